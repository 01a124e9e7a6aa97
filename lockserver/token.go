package lockserver

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Keys in etcd. Lock servers keep no lock state: everything lives here.
//
//	/locks/<resourceId>            = hex SHA-256 of the lockToken, attached to the grant's lease
//	/lockinfo/<resourceId>         = lockInfo JSON, same lease, written in the same txn
//	/waiters/<resourceId>#/<lease>.<random> = a blocked acquire's place in the queue (under its lease)
//
// resourceIds cannot contain '#', so no waiter prefix is a prefix of another's.
const (
	lockPrefix   = "/locks/"
	infoPrefix   = "/lockinfo/"
	waiterPrefix = "/waiters/"
)

func lockKey(id string) string       { return lockPrefix + id }
func infoKey(id string) string       { return infoPrefix + id }
func releasedKey(id string) string   { return ReleasedPrefix + id }
func waitersPrefix(id string) string { return waiterPrefix + id + "#/" }

// waiterKey names one registration in the queue: the lease id (which the
// pool reuses) plus 64 random bits, so that a name is never used twice. A
// reused name would let a waiter that read "my predecessor is K" watch a
// newer, later-queued K instead, and the two would wait on each other.
func waiterKey(id string, lease clientv3.LeaseID) string {
	var b [8]byte
	_, _ = io.ReadFull(rand.Reader, b[:]) // crypto/rand never fails on Linux
	return waitersPrefix(id) + strconv.FormatInt(int64(lease), 16) + "." + hex.EncodeToString(b[:])
}

// lockInfo is the metadata stored next to a lock.
type lockInfo struct {
	OwnerID    string    `json:"ownerId"`
	TTL        float64   `json:"ttl"`
	AcquiredAt time.Time `json:"acquiredAt"`
}

func encodeInfo(i lockInfo) string {
	b, _ := json.Marshal(i) // cannot fail: plain struct
	return string(b)
}

// tokenRandomBytes is the number of random bytes of a lockToken (160 bits).
const tokenRandomBytes = 20

// newToken returns "<lease id hex>.<random hex>": the lease id lets renew and
// release find the lease without a read; the random part makes it unguessable.
func newToken(lease clientv3.LeaseID) (string, error) {
	b := make([]byte, tokenRandomBytes)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return "", err
	}
	return strconv.FormatInt(int64(lease), 16) + "." + hex.EncodeToString(b), nil
}

// parseToken returns the lease id embedded in a token, or false when the
// token is not of the form newToken produces.
func parseToken(tok string) (clientv3.LeaseID, bool) {
	lease, random, ok := strings.Cut(tok, ".")
	if !ok || len(random) != 2*tokenRandomBytes {
		return 0, false
	}
	if _, err := hex.DecodeString(random); err != nil {
		return 0, false
	}
	id, err := strconv.ParseInt(lease, 16, 64)
	if err != nil || id <= 0 {
		return 0, false
	}
	return clientv3.LeaseID(id), true
}

// hashToken is what etcd stores instead of the token.
func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// InfoPrefix is the etcd prefix of every lock's metadata key. A watcher of
// this prefix sees each grant as a put whose ModRevision is the grant's
// fencing token, and each release or expiry as a delete. The sandbox's
// observer uses it to know who holds each lock in etcd.
const InfoPrefix = infoPrefix

// ReleasedPrefix holds release receipts: a successful release writes
// ReleasedPrefix+resourceId = SHA-256 of the released token, in the same txn
// that deletes the lock, under the lock's own lease (so it disappears with
// the lease). A watcher thus tells a release from a lease expiry. Keys under
// InfoPrefix and ReleasedPrefix are exactly the range [InfoPrefix, WatchEnd).
const ReleasedPrefix = "/lockrel/"

// WatchEnd ends the key range [InfoPrefix, WatchEnd) that holds every lock
// record and every release receipt, and nothing else.
const WatchEnd = "/lockrel0"

// HashToken is what etcd stores of a lock token (hex SHA-256).
func HashToken(tok string) string { return hashToken(tok) }

// Record is a lock's metadata as stored in etcd.
type Record struct {
	OwnerID    string
	TTL        time.Duration // the granted TTL
	AcquiredAt time.Time
}

// DecodeRecord parses the value of a key under InfoPrefix.
func DecodeRecord(value []byte) (Record, error) {
	var info lockInfo
	if err := json.Unmarshal(value, &info); err != nil {
		return Record{}, fmt.Errorf("lockserver: bad lock record: %w", err)
	}
	return Record{OwnerID: info.OwnerID, TTL: time.Duration(info.TTL * float64(time.Second)), AcquiredAt: info.AcquiredAt}, nil
}
