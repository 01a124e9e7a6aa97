package history

// Helpers to write histories by hand. Times are in milliseconds.

func ms(n int64) int64 { return n * 1_000_000 }

func ptr[T any](v T) *T { return &v }

func at(ret int64) *int64 { return ptr(ms(ret)) }

func acquireOK(client, res, token string, fencing int64, call, ret int64, ttl float64) Op {
	return Op{Client: client, Op: OpAcquire, Resource: res, Input: Input{TTL: ptr(ttl)},
		Output: Output{LockToken: token, FencingToken: fencing, TTL: ptr(ttl)},
		Call:   ms(call), Return: at(ret), Outcome: OK}
}

func acquireFail(client, res string, call, ret int64) Op {
	return Op{Client: client, Op: OpAcquire, Resource: res, Input: Input{TTL: ptr(1.0)},
		Output: Output{Error: "lock already held by another client"}, Call: ms(call), Return: at(ret), Outcome: Fail}
}

func acquireUnknown(client, res string, call int64, ttl float64) Op {
	return Op{Client: client, Op: OpAcquire, Resource: res, Input: Input{TTL: ptr(ttl)}, Call: ms(call), Outcome: Unknown}
}

func release(client, res, token string, call, ret int64, outcome Outcome, code string) Op {
	op := Op{Client: client, Op: OpRelease, Resource: res, Input: Input{LockToken: token}, Call: ms(call), Outcome: outcome}
	if outcome != Unknown {
		op.Return = at(ret)
	}
	if outcome == Fail {
		op.Output = Output{Code: code, Error: "failed"}
	}
	return op
}

func renew(client, res, token string, call, ret int64, outcome Outcome, ttl float64) Op {
	op := Op{Client: client, Op: OpRenew, Resource: res, Input: Input{LockToken: token, TTL: ptr(ttl)}, Call: ms(call), Outcome: outcome}
	if outcome != Unknown {
		op.Return = at(ret)
	}
	if outcome == Fail {
		op.Output = Output{Code: "not_held", Error: "lock not held"}
	}
	return op
}

func read(client, res string, fencing, call, ret, value int64) Op {
	return Op{Client: client, Op: OpRead, Resource: res, Input: Input{FencingToken: fencing},
		Output: Output{Value: ptr(value)}, Call: ms(call), Return: at(ret), Outcome: OK}
}

func readRejected(client, res string, fencing, call, ret int64) Op {
	return Op{Client: client, Op: OpRead, Resource: res, Input: Input{FencingToken: fencing},
		Output: Output{Rejected: true}, Call: ms(call), Return: at(ret), Outcome: Fail}
}

func write(client, res string, fencing, call, ret, value int64, outcome Outcome) Op {
	op := Op{Client: client, Op: OpWrite, Resource: res, Input: Input{FencingToken: fencing, Value: ptr(value)}, Call: ms(call), Outcome: outcome}
	if outcome != Unknown {
		op.Return = at(ret)
	}
	return op
}

func writeRejected(client, res string, fencing, call, ret, value int64) Op {
	op := write(client, res, fencing, call, ret, value, Fail)
	op.Output.Rejected = true
	return op
}
