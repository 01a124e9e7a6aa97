package sim

import (
	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/lockserver"
)

// EtcdRecord reads what etcd recorded about the locks — every grant, when
// each was deleted, and the receipts of the unknown releases in ops — for
// history.Resolve. Call Observer().Sync first, so that the record holds
// every write that took effect.
func (sb *Sandbox) EtcdRecord(ops []history.Op) history.Record {
	rec := history.Record{Now: int64(sb.Elapsed()), Released: map[string]int64{}}
	for _, g := range sb.observer.Grants() {
		hg := history.Grant{Owner: g.Owner, Resource: g.Resource, Revision: g.Revision, TTL: g.TTL, Seen: int64(g.Seen)}
		if end, ok := sb.observer.Ended(g.Revision); ok {
			hg.Ended = int64(end)
		}
		rec.Grants = append(rec.Grants, hg)
	}
	for _, op := range ops {
		if op.Op != history.OpRelease || op.Outcome != history.Unknown {
			continue
		}
		if at, ok := sb.observer.Released(lockserver.HashToken(op.Input.LockToken)); ok {
			rec.Released[op.Input.LockToken] = int64(at)
		}
	}
	return rec
}
