package web

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
)

// AppendFrameJSONL writes f as one line of a frames.jsonl file, the format
// Config.RunDir replays.
func AppendFrameJSONL(w io.Writer, f Frame) error {
	data, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("web: encode frame: %w", err)
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// ReadFramesJSONL reads a frames.jsonl file: one Frame a line, blank lines
// ignored.
func ReadFramesJSONL(r io.Reader) ([]Frame, error) {
	var out []Frame
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var f Frame
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			return nil, fmt.Errorf("web: frames.jsonl:%d: %w", line, err)
		}
		out = append(out, f)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("web: frames.jsonl: %w", err)
	}
	return out, nil
}
