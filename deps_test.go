package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/locksim/locksim"

// allowed lists, per package of the module, the packages of the module it
// may import directly. Imports follow the data flow downwards:
//
//	main (flags only)
//	  -> run, live, bench, grade   a scenario run and its report; the page's adapter; the benchmarks; grading a lock server
//	    -> sim                  the sandbox: config, clients, protected resource, control
//	      -> scenarios -> faults   a scenario file decodes into the fault runner's own steps
//	      -> cluster, lockserver, loadbalancer, history, web, sim/external   leaves
//	      -> conformance        the API battery (over lockserver's codes), also grade's
//	component (names, kinds, links of components) is importable by all.
//
// A package missing here may import nothing of the module: add it, with
// its arrows, when it is created.
var allowed = map[string][]string{
	"component":      {},
	"internal/words": {},
	"history":        {},
	"conformance":    {"lockserver"},
	"cluster":        {"component"},
	"lockserver":     {"component"},
	"loadbalancer":   {"component"},
	"web":            {"component"},
	"faults":         {"component", "internal/words"},
	"scenarios":      {"component", "faults", "internal/words", "sim/external"},
	"sim/resource":   {},
	"sim/external":   {},
	"sim/clients":    {"component", "history", "lockserver", "sim/resource"},
	"sim":            {"cluster", "component", "conformance", "faults", "history", "loadbalancer", "lockserver", "scenarios", "sim/clients", "sim/external", "sim/resource"},
	"run":            {"component", "faults", "history", "scenarios", "sim"},
	"grade":          {"component", "conformance", "faults", "history", "run", "scenarios", "sim"},
	"live":           {"component", "faults", "history", "lockserver", "run", "scenarios", "sim", "sim/clients", "web"},
	"bench":          {"cluster", "component", "history", "loadbalancer", "lockserver"},
}

// TestImportsFollowTheDataFlow enforces the arrows above (as tailscale's
// tstest/deptest does): no package imports one above it or beside it unless
// the table says so; only cluster imports the etcd server; history is a leaf
// over porcupine.
func TestImportsFollowTheDataFlow(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}|{{join .Imports " "}}`, "./...").Output()
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, "|")
		name := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		for _, imp := range strings.Fields(imports) {
			if strings.HasPrefix(imp, "go.etcd.io/etcd/server/") && name != "cluster" {
				t.Errorf("%s imports the etcd server (%s); only cluster may", name, imp)
			}
			if name == "history" && strings.Contains(imp, ".") && !strings.HasPrefix(imp, "github.com/anishathalye/porcupine") {
				t.Errorf("history must stay a leaf over porcupine, imports %s", imp)
			}
			dep, ours := strings.CutPrefix(imp, module+"/")
			if !ours || name == "" || strings.HasPrefix(name, "web/webtest") {
				continue // main may import anything; webtest is a test helper
			}
			arrows, known := allowed[name]
			if !known {
				t.Errorf("package %s is not in deps_test.go's table of allowed imports", name)
				continue
			}
			if !slices.Contains(arrows, dep) {
				t.Errorf("%s imports %s, which is not one of its allowed arrows %v", name, dep, arrows)
			}
		}
	}
}
