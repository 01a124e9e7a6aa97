package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/locksim/locksim/web"
)

// view serves a finished run's frames.jsonl (and history.html) in the page.
func (m *Main) view(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("view", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	addr := fs.String("web", "127.0.0.1:8080", "serve the visualizer here (port 0 = any free port)")
	dirs, err := parseInterleaved(fs, args)
	if err != nil {
		return exitBadInput
	}
	if len(dirs) != 1 {
		return m.errorf("view: want one run folder (a variant's folder with frames.jsonl, e.g. out/gc-pause-past-lease/fenced)")
	}
	dir, err := findRunDir(dirs[0])
	if err != nil {
		return m.errorf("view: %v", err)
	}
	srv, err := web.New(web.Config{Listen: *addr, RunDir: dir}, nil, nil)
	if err != nil {
		return m.errorf("view: %v", err)
	}
	if err := srv.Start(ctx); err != nil {
		return m.errorf("view: %v", err)
	}
	defer srv.Close()
	fmt.Fprintf(m.Stdout, "replaying %s\n  web UI       %s   <- open in a browser (Ctrl-C stops)\n", dir, srv.URL())
	if m.ReadyUI != nil {
		m.ReadyUI(srv.URL())
	}
	<-ctx.Done()
	return exitOK
}

// findRunDir returns dir if it holds frames.jsonl, else the one folder below
// it that does (an error names them when there are several).
func findRunDir(dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, "frames.jsonl")); err == nil {
		return dir, nil
	}
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == "frames.jsonl" {
			found = append(found, filepath.Dir(path))
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	switch len(found) {
	case 0:
		return "", errors.New(dir + ": no frames.jsonl here or below (written by `locksim run`)")
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%s holds several runs, pick one: %v", dir, found)
}
