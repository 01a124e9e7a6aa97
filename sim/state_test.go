package sim

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/component"
	"github.com/locksim/locksim/faults"
)

func TestLinksKeepsOnlyCutOrDelayed(t *testing.T) {
	got := links(
		[]cluster.Link{{From: "etcd-1", To: "etcd-2", Cut: true}, {From: "etcd-2", To: "etcd-1"}, {From: "etcd-3", To: "etcd-1", Latency: 20 * time.Millisecond}},
		[]faults.LinkState{{From: "lockserver-1", To: "etcd-1", Blocked: true}, {From: "client-1", To: "balancer", Latency: 30 * time.Millisecond}, {From: "x", To: "y"}},
	)
	want := []Link{
		{Link: component.Link{From: "etcd-1", To: "etcd-2"}, Cut: true},
		{Link: component.Link{From: "etcd-3", To: "etcd-1"}, Delay: 20 * time.Millisecond},
		{Link: component.Link{From: "lockserver-1", To: "etcd-1"}, Cut: true},
		{Link: component.Link{From: "client-1", To: "balancer"}, Delay: 30 * time.Millisecond},
	}
	assert.Equal(t, want, got)
}
