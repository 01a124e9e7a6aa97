package history

// Resolution is what the system of record (etcd, the protected resource)
// says about an operation whose outcome the client never learned.
type Resolution struct {
	// Applied reports that the operation took effect.
	Applied bool
	// Output is what the client would have been told when Applied: for an
	// acquire, the FencingToken (the revision of the grant) and, if known,
	// the LockToken and TTL. It is ignored when not Applied.
	Output Output
}

// ResolveCode marks the Output.Code of an operation ResolveUnknown found
// had no effect. It is not a "not held" claim (see ClaimsNotHeld).
const ResolveCode = "resolved_not_applied"

// ResolveUnknown returns a copy of ops in which every operation with an
// Unknown outcome for which resolve answers (known = true) is settled:
//
//   - applied: outcome OK with resolve's Output;
//   - not applied: outcome Fail with Code ResolveCode, a no-op for the
//     models.
//
// Either way the return time is set to end: a time by which every resolved
// operation had taken effect (for example Recorder.Since() right after the
// sandbox caught up with etcd); end <= 0 means the latest time in ops. The
// client never saw an answer, so the operation may have taken effect at any
// time in [call, end], and no client believed in its result. That keeps the check sound and removes the
// nondeterminism that makes porcupine slow on contended keys (FACTS
// "Checking").
//
// resolve is called only for Unknown operations. A typical sandbox answers
// for acquires from the grants etcd recorded for the client and resource
// after the op's call, and for releases from whether the lock key with that
// token was deleted before it expired. It should say known = false whenever
// it is not sure: an unresolved op stays Unknown, which is always sound.
func ResolveUnknown(ops []Op, end int64, resolve func(op Op) (r Resolution, known bool)) []Op {
	latest := end
	for _, op := range ops {
		latest = max(latest, op.Call, op.ret(0))
	}
	if end <= 0 {
		end = latest
	}
	out := make([]Op, len(ops))
	copy(out, ops)
	for i, op := range out {
		if op.Outcome != Unknown {
			continue
		}
		r, known := resolve(op)
		if !known {
			continue
		}
		ret := max(end, op.Call)
		out[i].Return = &ret
		if r.Applied {
			out[i].Outcome = OK
			out[i].Output = r.Output
			continue
		}
		out[i].Outcome = Fail
		out[i].Output = Output{Code: ResolveCode, Error: "resolved: the operation had no effect"}
	}
	return out
}
