package lockserver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrAuthFile is wrapped by every error of ParseAPIKeys.
var ErrAuthFile = errors.New("lockserver: bad API key file")

// ParseAPIKeys reads an API key file for Config.APIKeys: one "KEY CLIENT_ID"
// pair per line, separated by spaces or tabs. Blank lines and lines whose
// first non-blank character is '#' are ignored. A malformed line or a key
// given twice is an error naming name:line. A file without any key is an
// error too (it would silently turn auth off).
func ParseAPIKeys(r io.Reader, name string) (map[string]string, error) {
	keys := make(map[string]string)
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("%w: %s:%d: want \"KEY CLIENT_ID\", got %d fields", ErrAuthFile, name, n, len(f))
		}
		if _, dup := keys[f[0]]; dup {
			return nil, fmt.Errorf("%w: %s:%d: key given twice", ErrAuthFile, name, n)
		}
		keys[f[0]] = f[1]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrAuthFile, name, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: %s: no keys", ErrAuthFile, name)
	}
	return keys, nil
}
