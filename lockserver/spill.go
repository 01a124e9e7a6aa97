package lockserver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"time"
)

// Spill is where an Observer streams its record, so that a long run keeps
// the whole record on disk and only its recent past in memory (Retain). An
// *os.File is one: the Observer appends with Write and reads back with
// ReadAt, which does not move the file's offset.
type Spill interface {
	io.Writer
	io.ReaderAt
}

// ObservedRecord is everything an Observer recorded, as plain data.
type ObservedRecord struct {
	// From is when the record begins to be complete (0: from the start).
	From time.Duration
	// Grants is every grant etcd recorded, in revision order.
	Grants []RecordedGrant
	// Ended maps the fencing token of each grant whose deletion (release,
	// revoke, expiry or hand-over) was seen to when it was seen.
	Ended map[int64]time.Duration
	// Released maps the hash of each lock token (HashToken) whose release
	// receipt was seen to when it was seen.
	Released map[string]time.Duration
}

// spillLine is one line of a spill: exactly one of a grant, the end of a
// grant, a release receipt, or the time from which the record is complete
// again after the watch lost its place.
type spillLine struct {
	Grant    *RecordedGrant `json:"grant,omitempty"`
	Ended    int64          `json:"ended,omitempty"`
	Released string         `json:"released,omitempty"`
	From     bool           `json:"from,omitempty"`
	At       time.Duration  `json:"at,omitempty"`
}

// SpillTo makes the Observer write its record to s: first what it holds
// now, then every grant, end and receipt as it sees them. Retain then bounds
// only what it keeps in memory; Record reads the whole record back from s.
// Call it once, before Close.
func (o *Observer) SpillTo(s Spill) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.spill, o.spillW, o.spilled = s, bufio.NewWriterSize(&countWriter{w: s, n: &o.spilled}, 64<<10), 0
	if o.from > 0 {
		o.spillLocked(spillLine{From: true, At: o.from})
	}
	for _, g := range o.grants {
		o.spillLocked(spillLine{Grant: &g})
	}
	for rev, at := range o.ended {
		o.spillLocked(spillLine{Ended: rev, At: at})
	}
	for hash, at := range o.released {
		o.spillLocked(spillLine{Released: hash, At: at})
	}
}

// spillLocked writes one line to the spill, if there is one; the first
// error is kept for Record.
func (o *Observer) spillLocked(l spillLine) {
	if o.spillW == nil || o.spillErr != nil {
		return
	}
	b, err := json.Marshal(l)
	if err == nil {
		b = append(b, '\n')
		_, err = o.spillW.Write(b)
	}
	if err != nil {
		o.spillErr = fmt.Errorf("lockserver: observer spill: %w", err)
	}
}

// Record returns everything the Observer recorded: with a spill (SpillTo),
// the whole record read back from it; otherwise what it keeps in memory
// (all of it unless Retain). Call Sync first to include every write that
// took effect.
func (o *Observer) Record() (ObservedRecord, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.spillW == nil {
		return ObservedRecord{
			From:     o.from,
			Grants:   append([]RecordedGrant(nil), o.grants...),
			Ended:    maps.Clone(o.ended),
			Released: maps.Clone(o.released),
		}, nil
	}
	if o.spillErr == nil {
		if err := o.spillW.Flush(); err != nil {
			o.spillErr = fmt.Errorf("lockserver: observer spill: %w", err)
		}
	}
	if o.spillErr != nil {
		return ObservedRecord{}, o.spillErr
	}
	return ReadSpill(io.NewSectionReader(o.spill, 0, o.spilled))
}

// ReadSpill reads a record an Observer wrote with SpillTo. A line that is
// not one the Observer writes is an error naming the line; nothing is
// returned then.
func ReadSpill(r io.Reader) (ObservedRecord, error) {
	rec := ObservedRecord{Ended: map[int64]time.Duration{}, Released: map[string]time.Duration{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var l spillLine
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return ObservedRecord{}, fmt.Errorf("lockserver: observer spill line %d: %w", n, err)
		}
		kinds := 0
		for _, set := range []bool{l.Grant != nil, l.Ended != 0, l.Released != "", l.From} {
			if set {
				kinds++
			}
		}
		if kinds != 1 {
			return ObservedRecord{}, fmt.Errorf("lockserver: observer spill line %d: want one of grant, ended, released, from; got %d", n, kinds)
		}
		switch {
		case l.Grant != nil:
			rec.Grants = append(rec.Grants, *l.Grant)
		case l.Ended != 0:
			rec.Ended[l.Ended] = l.At
		case l.Released != "":
			rec.Released[l.Released] = l.At
		case l.From:
			rec.From = max(rec.From, l.At)
		}
	}
	if err := sc.Err(); err != nil {
		return ObservedRecord{}, fmt.Errorf("lockserver: observer spill: %w", err)
	}
	return rec, nil
}

// countWriter counts the bytes written through it, so that Record reads
// back exactly what was flushed.
type countWriter struct {
	w io.Writer
	n *int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	*c.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return n, err
}
