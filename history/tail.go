package history

// Tail makes a history that lost its beginning — the most recent operations
// a Recorder with Keep holds — safe to check. It drops the releases and
// renewals of lock tokens whose acquire is not in ops: their lock was taken
// before the tail began, and without its grant the lock model would take a
// release of it for a release by a non-holder. It returns the operations
// kept and their positions in ops.
//
// Checking a tail never reports a violation the whole history does not
// have: every grant in it was really made, in the order it was made, and
// the resource model starts from an unknown value and treats a write whose
// read was lost as a blind write. It can miss one that involves the lost
// beginning (a grant made while a lock taken before the tail was held);
// the check of the whole history at the end of a run does not.
func Tail(ops []Op) ([]Op, []int) {
	acquired := map[string]bool{}
	for _, op := range ops {
		if op.Op == OpAcquire && op.Output.LockToken != "" {
			acquired[op.Output.LockToken] = true
		}
	}
	out := make([]Op, 0, len(ops))
	idx := make([]int, 0, len(ops))
	for i, op := range ops {
		if (op.Op == OpRelease || op.Op == OpRenew) && !acquired[op.Input.LockToken] {
			continue
		}
		out = append(out, op)
		idx = append(idx, i)
	}
	return out, idx
}
