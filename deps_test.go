package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/locksim/locksim/"

// TestImportsFlowOneWay enforces the layering: main -> sim -> the rest;
// siblings do not import each other; only cluster and sim import the etcd
// server; history is a leaf over porcupine.
func TestImportsFlowOneWay(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}|{{join .Imports " "}}`, "./...").Output()
	require.NoError(t, err)
	siblings := []string{"cluster", "lockserver", "loadbalancer", "faults", "history", "scenarios", "web"}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, "|")
		name := strings.TrimPrefix(pkg, module)
		for _, imp := range strings.Fields(imports) {
			dep := strings.TrimPrefix(imp, module)
			if slices.Contains(siblings, name) && slices.Contains(siblings, dep) {
				t.Errorf("%s imports its sibling %s", name, dep)
			}
			if strings.HasPrefix(imp, "go.etcd.io/etcd/server/") && name != "cluster" && name != "sim" {
				t.Errorf("%s imports the etcd server (%s); only cluster and sim may", name, imp)
			}
			if name == "history" && strings.Contains(imp, ".") && !strings.HasPrefix(imp, "github.com/anishathalye/porcupine") {
				t.Errorf("history must stay a leaf over porcupine, imports %s", imp)
			}
			if dep == "sim" && pkg != strings.TrimSuffix(module, "/") {
				t.Errorf("%s imports sim; only main may", name)
			}
		}
	}
}
