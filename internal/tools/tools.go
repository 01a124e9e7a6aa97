//go:build tools

// Package tools pins the module's dependencies until the packages that use
// them import them directly. It is never built.
package tools

import (
	_ "github.com/anishathalye/porcupine"
	_ "github.com/gorilla/websocket"
	_ "github.com/stretchr/testify/require"
	_ "go.etcd.io/etcd/client/v3"
	_ "go.etcd.io/etcd/client/v3/concurrency"
	_ "go.etcd.io/etcd/pkg/v3/proxy"
	_ "go.etcd.io/etcd/server/v3/embed"
	_ "go.uber.org/goleak"
	_ "go.uber.org/zap"
	_ "golang.org/x/time/rate"
	_ "gopkg.in/yaml.v3"
)
