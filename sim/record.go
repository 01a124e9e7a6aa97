package sim

import (
	"fmt"
	"time"

	"github.com/locksim/locksim/history"
	"github.com/locksim/locksim/lockserver"
)

// EtcdRecord reads what etcd recorded about the locks — every grant, when
// each was deleted, and the receipts of the unknown releases in ops — for
// history.Resolve. Call Observer().Sync first, so that the record holds
// every write that took effect. With StreamHistory the record is read back
// from its file, whatever EtcdRecordRetain kept in memory.
//
// A lock server that is not locksim's own keeps its locks in etcd its own
// way, which the Observer cannot read: its record is empty and begins now,
// so that history.Resolve leaves every unknown outcome unknown instead of
// settling it from a record that does not hold it.
func (sb *Sandbox) EtcdRecord(ops []history.Op) (history.Record, error) {
	now := sb.Elapsed()
	if sb.cfg.Custom() {
		return history.Record{Now: int64(now), From: int64(now)}, nil
	}
	obs, err := sb.observer.Record()
	if err != nil {
		return history.Record{}, fmt.Errorf("sim: etcd record: %w", err)
	}
	return etcdRecord(obs, now, ops), nil
}

func etcdRecord(o lockserver.ObservedRecord, now time.Duration, ops []history.Op) history.Record {
	rec := history.Record{Now: int64(now), From: int64(o.From), Released: map[string]int64{}}
	for _, g := range o.Grants {
		hg := history.Grant{Owner: g.Owner, Resource: g.Resource, Revision: g.Revision, TTL: g.TTL, Seen: int64(g.Seen)}
		if end, ok := o.Ended[g.Revision]; ok {
			hg.Ended = int64(end)
		}
		rec.Grants = append(rec.Grants, hg)
	}
	for _, op := range ops {
		if op.Op != history.OpRelease || op.Outcome != history.Unknown {
			continue
		}
		if at, ok := o.Released[lockserver.HashToken(op.Input.LockToken)]; ok {
			rec.Released[op.Input.LockToken] = int64(at)
		}
	}
	return rec
}
