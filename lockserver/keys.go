package lockserver

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The key layout in etcd: lock servers keep no lock state, everything lives
// here. The server writes these keys and the Observer reads them.
//
//	/locks/<resourceId>                      hex SHA-256 of the lockToken, on the lock's lease
//	/lockinfo/<resourceId>                   lock record JSON, same lease, always written with the lock key
//	/waiters/<resourceId>#/<claim>.<random>  a blocked acquire's registration, on its server's claim lease
//	/lockrel/<resourceId>                    release receipt: hex SHA-256 of the released token, on a receipt lease
//
// resourceIds cannot contain '#', so no waiter prefix is a prefix of another's.
const (
	// LockPrefix holds the lock keys: the value is the holder's token hash.
	LockPrefix = "/locks/"
	// InfoPrefix holds each lock's record (DecodeRecord), written in the
	// same txn as the lock key, on the same lease, and deleted with it. A
	// grant writes it (a direct grant creates it, a hand-over overwrites the
	// previous holder's), and the grant's fencing token is that write's
	// revision: the record's ModRevision, or Record.Fencing once a renew
	// rewrote it. A watcher of this prefix sees a grant as a put with a new
	// fencing token, a renew as a put that keeps it (on another lease), and
	// a release or expiry as a delete (a hand-over is a release and a grant
	// in one put).
	InfoPrefix = "/lockinfo/"
	// WaiterPrefix holds the queue of blocked acquires.
	WaiterPrefix = "/waiters/"
	// ReleasedPrefix holds release receipts: a successful release writes
	// ReleasedPrefix+resourceId = HashToken(released token), in the same txn
	// that ends the grant, so that a watcher tells a release from a lease
	// expiry. A receipt lives on a receipt lease of its lock server and
	// leaves etcd within Config.ReceiptTTL (or at the resource's next direct
	// grant).
	ReleasedPrefix = "/lockrel/"
	// WatchEnd ends the key range [InfoPrefix, WatchEnd), which holds every
	// lock record and every release receipt, and nothing else.
	WatchEnd = "/lockrel0"
)

func lockKey(id string) string       { return LockPrefix + id }
func infoKey(id string) string       { return InfoPrefix + id }
func releasedKey(id string) string   { return ReleasedPrefix + id }
func waitersPrefix(id string) string { return WaiterPrefix + id + "#/" }

// waiterKey names one registration in the queue: the claim lease id (which
// is shared) plus 64 random bits, so that a name is never used twice. A
// reused name would let a waiter that read "my predecessor is K" watch a
// newer, later-queued K instead, and the two would wait on each other.
func waiterKey(id string, lease clientv3.LeaseID) string {
	var b [8]byte
	_, _ = io.ReadFull(rand.Reader, b[:]) // crypto/rand never fails on Linux
	return waitersPrefix(id) + strconv.FormatInt(int64(lease), 16) + "." + hex.EncodeToString(b[:])
}

// lockInfo is the lock record stored next to a lock. TTL is the granted TTL
// of the lease the lock is on now (a renew rewrites it).
type lockInfo struct {
	OwnerID    string    `json:"ownerId"`
	TTL        float64   `json:"ttl"`
	AcquiredAt time.Time `json:"acquiredAt"`
	// Fencing is the grant's fencing token once a renew rewrote the record
	// (0: the record's ModRevision is).
	Fencing int64 `json:"fencing,omitempty"`
	// Lasts is set by a hand-over: the lock lasts at least this long from
	// the record's write, which can be less than TTL (the waiter's server
	// restarted the lease before the release handed the lock over).
	Lasts *float64 `json:"lasts,omitempty"`
}

// encodeInfo is the record's JSON, written by hand: it is on every grant's path.
func encodeInfo(i lockInfo) string {
	b := make([]byte, 0, 96+len(i.OwnerID))
	b = append(b, `{"ownerId":`...)
	b = appendJSONString(b, i.OwnerID)
	b = append(b, `,"ttl":`...)
	b = appendJSONFloat(b, i.TTL)
	b = append(b, `,"acquiredAt":"`...)
	b = i.AcquiredAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if i.Fencing != 0 {
		b = append(b, `,"fencing":`...)
		b = strconv.AppendInt(b, i.Fencing, 10)
	}
	if i.Lasts != nil {
		b = append(b, `,"lasts":`...)
		b = appendJSONFloat(b, *i.Lasts)
	}
	return string(append(b, '}'))
}

// Record is a lock's record as stored in etcd under InfoPrefix.
type Record struct {
	OwnerID    string
	TTL        time.Duration // the granted TTL of the lease the lock is on
	AcquiredAt time.Time
	// Fencing is the grant's fencing token when the record names it (after
	// a renew); 0 means the record's ModRevision is (see FencingOf).
	Fencing int64
	// Lasts is how long the lock lasts at least from the record's write:
	// TTL, or less after a hand-over (see InfoPrefix).
	Lasts time.Duration
}

// DecodeRecord parses the value of a key under InfoPrefix.
func DecodeRecord(value []byte) (Record, error) {
	var info lockInfo
	if err := json.Unmarshal(value, &info); err != nil {
		return Record{}, fmt.Errorf("lockserver: bad lock record: %w", err)
	}
	r := Record{OwnerID: info.OwnerID, TTL: seconds(info.TTL), AcquiredAt: info.AcquiredAt, Fencing: info.Fencing}
	r.Lasts = r.TTL
	if info.Lasts != nil {
		r.Lasts = min(r.TTL, seconds(*info.Lasts))
	}
	return r, nil
}

// FencingOf is the fencing token of the grant whose record kv is: the
// revision that wrote the grant.
func FencingOf(kv *mvccpb.KeyValue, r Record) int64 {
	if r.Fencing != 0 {
		return r.Fencing
	}
	return kv.ModRevision
}

// registration is what a blocked acquire leaves in its waiter key: all a
// release needs to hand the lock over to it in the release's own txn.
type registration struct {
	key   string           // the waiter key
	rev   int64            // its CreateRevision: the place in the queue
	hash  string           // the token's hash the lock gets
	lease clientv3.LeaseID // the lease the lock goes on, which the waiter keeps alive
	ttl   time.Duration    // that lease's granted TTL
	owner string           // the acquire's clientId
}

// errBadRegistration: a waiter key's value is not a registration.
var errBadRegistration = errors.New("lockserver: bad waiter registration")

// encodeRegistration is "<hash> <lease hex> <ttl ms> <owner>".
func encodeRegistration(r registration) string {
	b := make([]byte, 0, 100+len(r.owner))
	b = append(b, r.hash...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(r.lease), 16)
	b = append(b, ' ')
	b = strconv.AppendInt(b, r.ttl.Milliseconds(), 10)
	b = append(b, ' ')
	b = append(b, r.owner...)
	return string(b)
}

// decodeRegistration parses a waiter key's kv.
func decodeRegistration(kv *mvccpb.KeyValue) (registration, error) {
	f := strings.SplitN(string(kv.Value), " ", 4)
	if len(f) != 4 {
		return registration{}, errBadRegistration
	}
	lease, err1 := strconv.ParseInt(f[1], 16, 64)
	ttl, err2 := strconv.ParseInt(f[2], 10, 64)
	if err := errors.Join(err1, err2); err != nil || len(f[0]) != 64 || lease == 0 || ttl <= 0 {
		return registration{}, errBadRegistration
	}
	return registration{key: string(kv.Key), rev: kv.CreateRevision, hash: f[0], lease: clientv3.LeaseID(lease),
		ttl: time.Duration(ttl) * time.Millisecond, owner: f[3]}, nil
}
