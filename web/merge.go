package web

// Merge coalesces next into prev, the two frames being consecutive updates:
// the result carries next's state and every op and fault of both, each
// upserted by id (a later version of an op replaces the earlier one in place,
// so an op that started in prev and completed in next appears once,
// completed). prev and next are not modified.
func Merge(prev, next Frame) Frame {
	out := next
	out.Ops = Upsert(prev.Ops, next.Ops, Op.key)
	out.Faults = Upsert(prev.Faults, next.Faults, Fault.key)
	return out
}

func (o Op) key() uint64 { return o.ID }
func (f Fault) key() int { return f.ID }

// Upsert returns list with each of items put in place of the element with
// the same key, or appended when there is none. list is not modified.
func Upsert[T any, K comparable](list, items []T, key func(T) K) []T {
	if len(list) == 0 {
		return items
	}
	out := make([]T, len(list), len(list)+len(items))
	copy(out, list)
	at := make(map[K]int, len(out))
	for i, x := range out {
		at[key(x)] = i
	}
	for _, x := range items {
		if i, ok := at[key(x)]; ok {
			out[i] = x
			continue
		}
		at[key(x)] = len(out)
		out = append(out, x)
	}
	return out
}
