package history

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// FuzzReadJSONL feeds arbitrary files to the history parser: it never
// panics, rejects with ErrInvalid, and what it accepts survives a round trip
// through WriteJSONL and can be checked and explained.
func FuzzReadJSONL(f *testing.F) {
	for _, name := range []string{"testdata/valid.jsonl", "testdata/overlap.jsonl", "testdata/unfenced.jsonl", "testdata/runs/unsafe-check-then-set/history.jsonl"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"client":"c","op":"acquire","resource":"r","input":{},"output":{},"call":5,"outcome":"unknown"}`))
	f.Add([]byte("{\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ops, err := ReadJSONL(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("rejection does not wrap ErrInvalid: %v", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := WriteJSONL(&buf, ops); err != nil {
			t.Fatal(err)
		}
		again, err := ReadJSONL(&buf)
		if err != nil {
			t.Fatalf("a written history does not read back: %v", err)
		}
		if len(again) != len(ops) {
			t.Fatalf("round trip lost operations: %d != %d", len(again), len(ops))
		}
		if len(ops) <= 50 {
			res := Check(ops, Options{Timeout: 100e6, Explain: true, ExplainBudget: 100e6})
			for _, e := range res.Explanations {
				if len(e.Operations) == 0 || e.Text == "" || len(e.Index) != len(e.Operations) {
					t.Fatalf("empty explanation: %+v", e)
				}
			}
		}
	})
}
