package sim

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/locksim/locksim/lockserver"
)

// The test binary doubles as a lock server program for the tests of
// Config.LockServerCmd: with LOCKSIM_HELPER set it runs helperMain.
func TestMain(m *testing.M) {
	if mode := os.Getenv("LOCKSIM_HELPER"); mode != "" {
		os.Exit(helperMain(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// helperCommand is a LockServerCmd that runs this test binary as a lock
// server in the given mode.
func helperCommand(mode string) string {
	return fmt.Sprintf("LOCKSIM_HELPER=%s %s -test.run=^$ --listen {listen} --etcd {etcd} --name {name}", mode, os.Args[0])
}

// helperMain is a lock server process: locksim's own lock server against
// --etcd, served at --listen, with GET /quit to make it exit with status 3
// on its own. Modes: "lockserver"; "garbage" answers every /locks/ GET with
// HTML; "exit" exits at once with status 7.
func helperMain(mode string, args []string) int {
	fs := flag.NewFlagSet("helper", flag.ContinueOnError)
	listen := fs.String("listen", "", "")
	etcd := fs.String("etcd", "", "")
	name := fs.String("name", "", "")
	_ = fs.String("test.run", "", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if mode == "exit" {
		fmt.Fprintln(os.Stderr, "helper: cannot start: no configuration")
		return 7
	}
	s, err := lockserver.New(lockserver.Config{Name: *name, Endpoints: strings.Split(*etcd, ","), EtcdTimeout: time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := s.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	h := s.Handler()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("listening on", *listen)
	go func() {
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.URL.Path == "/quit":
				fmt.Fprintln(os.Stderr, "helper: asked to quit")
				os.Exit(3)
			case mode == "garbage" && strings.HasPrefix(r.URL.Path, "/locks/"):
				_, _ = w.Write([]byte("<html>not the API</html>"))
			default:
				h.ServeHTTP(w, r)
			}
		}))
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	_ = s.Close()
	return 0
}
