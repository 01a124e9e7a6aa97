package sim

import (
	"time"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/lockserver"
)

// EtcdRecord reads what etcd recorded about the locks — every grant, when
// each was deleted, and the receipts of the unknown releases in ops — for
// history.Resolve. Call Observer().Sync first, so that the record holds
// every write that took effect.
//
// A lock server that is not locksim's own keeps its locks in etcd its own
// way, which the Observer cannot read: its record is empty and begins now,
// so that history.Resolve leaves every unknown outcome unknown instead of
// settling it from a record that does not hold it.
func (sb *Sandbox) EtcdRecord(ops []history.Op) history.Record {
	now := sb.Elapsed()
	if sb.cfg.Custom() {
		return history.Record{Now: int64(now), From: int64(now)}
	}
	return etcdRecord(sb.observer, now, ops)
}

// lockRecord is what EtcdRecord reads of the lockserver.Observer.
type lockRecord interface {
	From() time.Duration
	Grants() []lockserver.RecordedGrant
	Ended(rev int64) (time.Duration, bool)
	Released(hash string) (time.Duration, bool)
}

func etcdRecord(o lockRecord, now time.Duration, ops []history.Op) history.Record {
	rec := history.Record{Now: int64(now), From: int64(o.From()), Released: map[string]int64{}}
	for _, g := range o.Grants() {
		hg := history.Grant{Owner: g.Owner, Resource: g.Resource, Revision: g.Revision, TTL: g.TTL, Seen: int64(g.Seen)}
		if end, ok := o.Ended(g.Revision); ok {
			hg.Ended = int64(end)
		}
		rec.Grants = append(rec.Grants, hg)
	}
	for _, op := range ops {
		if op.Op != history.OpRelease || op.Outcome != history.Unknown {
			continue
		}
		if at, ok := o.Released(lockserver.HashToken(op.Input.LockToken)); ok {
			rec.Released[op.Input.LockToken] = int64(at)
		}
	}
	return rec
}
