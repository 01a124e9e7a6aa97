package web

// Merge coalesces next into prev, the two frames being consecutive updates:
// the result carries next's state and every op and fault of both, each
// upserted by id (a later version of an op replaces the earlier one in place,
// so an op that started in prev and completed in next appears once,
// completed). prev and next are not modified.
func Merge(prev, next Frame) Frame {
	out := next
	out.Ops = mergeOps(prev.Ops, next.Ops)
	out.Faults = mergeFaults(prev.Faults, next.Faults)
	return out
}

func mergeOps(a, b []Op) []Op {
	if len(a) == 0 {
		return b
	}
	out := make([]Op, len(a), len(a)+len(b))
	copy(out, a)
	at := make(map[uint64]int, len(out))
	for i, o := range out {
		at[o.ID] = i
	}
	for _, o := range b {
		if i, ok := at[o.ID]; ok {
			out[i] = o
			continue
		}
		at[o.ID] = len(out)
		out = append(out, o)
	}
	return out
}

func mergeFaults(a, b []Fault) []Fault {
	if len(a) == 0 {
		return b
	}
	out := make([]Fault, len(a), len(a)+len(b))
	copy(out, a)
	at := make(map[int]int, len(out))
	for i, f := range out {
		at[f.ID] = i
	}
	for _, f := range b {
		if i, ok := at[f.ID]; ok {
			out[i] = f
			continue
		}
		at[f.ID] = len(out)
		out = append(out, f)
	}
	return out
}
