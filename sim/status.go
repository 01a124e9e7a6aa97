package sim

import (
	"fmt"
	"strings"
	"time"
)

// Status is a one-glance summary of the sandbox, printed by `locksim up`
// every second.
type Status struct {
	At         time.Duration `json:"at"`
	Leader     string        `json:"leader"`
	Term       uint64        `json:"term"`
	MembersUp  int           `json:"membersUp"`
	Members    int           `json:"members"`
	External   bool          `json:"external"` // etcd is not embedded`
	HeldLocks  int           `json:"heldLocks"`
	AcquiresOK uint64        `json:"acquiresOk"`
	Failed     uint64        `json:"failed"`
	Unknown    uint64        `json:"unknown"`
	Cycles     uint64        `json:"cycles"`

	// VIPOwner is the balancer the virtual address goes to now, with a
	// group of balancers ("-" for none; "" with one balancer).
	VIPOwner string `json:"vipOwner,omitempty"`
}

// Status reads the current summary.
func (sb *Sandbox) Status() Status {
	st := Status{At: sb.Elapsed(), Leader: "-"}
	st.External = sb.cluster == nil
	if sb.cluster != nil {
		for _, m := range sb.cluster.Status() {
			st.Members++
			if m.Up {
				st.MembersUp++
			}
			if m.Leader {
				st.Leader = m.Name
			}
			st.Term = max(st.Term, m.Term)
		}
	}
	st.HeldLocks = len(sb.heldLocks())
	if sb.vip != nil {
		st.VIPOwner, _ = sb.vip.Owner()
		if st.VIPOwner == "" {
			st.VIPOwner = "-"
		}
	}
	for _, c := range sb.Clients() {
		st.AcquiresOK += c.OK
		st.Failed += c.Fail
		st.Unknown += c.Unknown
		st.Cycles += c.Cycles
	}
	return st
}

// StatusLine formats the change between two summaries as one line: leader,
// term, the owner of the virtual address (with a group of balancers), held
// locks, acquires per second and errors.
func StatusLine(prev, cur Status) string {
	secs := (cur.At - prev.At).Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(cur.AcquiresOK-prev.AcquiresOK) / secs
	}
	var b strings.Builder
	fmt.Fprintf(&b, "t=%5.1fs ", cur.At.Seconds())
	if cur.External {
		b.WriteString("etcd=external")
	} else {
		fmt.Fprintf(&b, "leader=%s term=%d members=%d/%d", cur.Leader, cur.Term, cur.MembersUp, cur.Members)
	}
	if cur.VIPOwner != "" {
		fmt.Fprintf(&b, " vip=%s", cur.VIPOwner)
	}
	fmt.Fprintf(&b, " held=%d acquires/s=%.0f", cur.HeldLocks, rate)
	fmt.Fprintf(&b, " busy/failed=%d unknown=%d", cur.Failed-prev.Failed, cur.Unknown-prev.Unknown)
	return b.String()
}
