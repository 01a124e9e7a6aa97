package cluster

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
)

// freePorts returns n distinct ports that were free on host a moment ago. It
// holds all n listeners at once so the ports differ, then releases them. Another
// process may grab one before etcd binds it: callers retry on EADDRINUSE.
func freePorts(host string, n int) ([]int, error) {
	ports := make([]int, 0, n)
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("cluster: allocate port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// isAddrInUse reports whether err comes from binding a port that is taken.
// embed does not always wrap the syscall error, so the text is checked too.
func isAddrInUse(err error) bool {
	return err != nil && (errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use"))
}

// httpURL is "http://host:port".
func httpURL(host string, port int) string { return "http://" + hostPort(host, port) }

// hostPort is "host:port" ("[host]:port" for IPv6).
func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
