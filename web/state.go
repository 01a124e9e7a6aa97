package web

import (
	"context"
	"github.com/locksim/locksim/component"
	"time"
)

// Frame is one update of the sandbox's state. Every field except Ops and
// Faults is the full current state; Ops and Faults hold only what changed
// since the previous frame (upserted by id). The first message a viewer gets
// is a full Frame (a snapshot): there Ops and Faults hold everything so far,
// possibly truncated to the most recent entries.
type Frame struct {
	Seq         uint64         `json:"seq"`
	T           int64          `json:"t"`    // ns since the sandbox started
	Pace        string         `json:"pace"` // "fast" | "classroom"
	Fencing     bool           `json:"fencing"`
	Members     []Member       `json:"members"`
	LockServers []Node         `json:"lockServers"`
	Balancer    Node           `json:"balancer"`            // the only balancer; empty with a group
	Balancers   []Balancer     `json:"balancers,omitempty"` // a group of two or more behind a virtual address
	VIP         *VIP           `json:"vip,omitempty"`       // the group's virtual address
	Clients     []ClientState  `json:"clients"`
	Links       []Link         `json:"links"` // only cut or delayed links
	Locks       []Lock         `json:"locks"`
	Resources   []Resource     `json:"resources"`
	Ops         []Op           `json:"ops"`
	Faults      []Fault        `json:"faults"`
	Verdict     Verdict        `json:"verdict"`
	Scenario    *ScenarioState `json:"scenario,omitempty"`
}

// Member is one etcd member.
type Member struct {
	Name        string `json:"name"`
	Up          bool   `json:"up"`
	Leader      bool   `json:"leader"`
	Partitioned bool   `json:"partitioned"`
	Role        string `json:"role"` // leader, follower, candidate, down
	Term        uint64 `json:"term"`
	Commit      uint64 `json:"commit"`
	Applied     uint64 `json:"applied"`
}

// Node is a lock server or a balancer.
type Node struct {
	Name     string `json:"name"`
	URL      string `json:"url"`
	Up       bool   `json:"up"`
	Paused   bool   `json:"paused"`
	InFlight int64  `json:"inFlight"`
	Requests uint64 `json:"requests"`
}

// Balancer is one balancer of a group: its proxy and its place in the VRRP
// election.
type Balancer struct {
	Node
	State        string `json:"state"` // master, backup, init; "" when down
	Priority     int    `json:"priority"`
	Preempt      bool   `json:"preempt"`
	Master       string `json:"master"`  // who it takes for master
	OwnsVIP      bool   `json:"ownsVip"` // the virtual address goes to it now
	AdvertsSent  uint64 `json:"advertsSent"`
	AdvertsHeard uint64 `json:"advertsHeard"`
	MasterDownMs int64  `json:"masterDownMs"` // its master-down interval
	Since        int64  `json:"since"`        // ns since start: its last change of state
	Reason       string `json:"reason"`       // why
}

// VIP is the virtual address of a group of balancers.
type VIP struct {
	URL   string `json:"url"`
	Owner string `json:"owner"` // "" = nobody answers
	Moves uint64 `json:"moves"` // changes of owner so far
}

// ClientState is one simulated client.
type ClientState struct {
	Name         string `json:"name"`
	Paused       bool   `json:"paused"`
	Phase        string `json:"phase"` // idle, acquiring, holding, reading, writing, releasing
	Resource     string `json:"resource"`
	FencingToken int64  `json:"fencingToken"`
	Believes     bool   `json:"believes"` // believes it holds the lock on Resource
	SkewMs       int64  `json:"skewMs"`
	OK           uint64 `json:"ok"`
	Fail         uint64 `json:"fail"`
	Unknown      uint64 `json:"unknown"`
}

// Link is a cut or delayed network link between two named nodes.
type Link struct {
	component.Link
	Cut     bool  `json:"cut"`
	DelayMs int64 `json:"delayMs"`
}

// Lock is one lock as etcd holds it, next to who believes they hold it.
type Lock struct {
	Resource     string   `json:"resource"`
	Held         bool     `json:"held"`
	Owner        string   `json:"owner"`
	FencingToken int64    `json:"fencingToken"`
	ExpiresInMs  int64    `json:"expiresInMs"`
	TTLms        int64    `json:"ttlMs"`
	Waiters      int      `json:"waiters"`
	Believers    []string `json:"believers"` // clients that believe they hold it
}

// Resource is one protected resource (a fenced counter).
type Resource struct {
	Name         string `json:"name"`
	Value        int64  `json:"value"`
	HighestToken int64  `json:"highestToken"`
	Rejected     uint64 `json:"rejected"` // stale requests rejected
}

// Op is one client operation. Call and Return are ns since the sandbox
// started; Return is 0 while the operation is pending or when its outcome is
// unknown.
type Op struct {
	ID       uint64 `json:"id"`
	Client   string `json:"client"`
	Op       string `json:"op"`
	Resource string `json:"resource"`
	Outcome  string `json:"outcome"` // ok, fail, unknown, or "" while pending
	Call     int64  `json:"call"`
	Return   int64  `json:"return"`
	Detail   string `json:"detail"`
}

// Fault is one injected fault. End is 0 while it lasts.
type Fault struct {
	ID     int    `json:"id"`
	Fault  string `json:"fault"`
	Target string `json:"target"`
	Start  int64  `json:"start"`
	End    int64  `json:"end"`
	Note   string `json:"note"`
	Error  string `json:"error"`
}

// Verdict is the live checker's latest result.
type Verdict struct {
	Lock       string `json:"lock"`     // linearizable, violated, unknown, or ""
	Resource   string `json:"resource"` // same values
	CheckedOps int    `json:"checkedOps"`
	At         int64  `json:"at"`
	HistoryURL string `json:"historyURL"`
	// Explanations say, for each violation, the few operations that break
	// it, in words; the page highlights Ops on the timeline.
	Explanations []Explanation `json:"explanations,omitempty"`
}

// Explanation is one violation explained: its kind, the words, and the ids
// of the operations (Op.ID) that show it.
type Explanation struct {
	Resource string   `json:"resource"`
	Model    string   `json:"model"` // lock or resource
	Kind     string   `json:"kind"`  // e.g. stale-write-accepted
	Text     string   `json:"text"`
	Ops      []uint64 `json:"ops"`
}

// ScenarioState is the scenario being run, if any.
type ScenarioState struct {
	Name              string `json:"name"`
	Description       string `json:"description"`
	Note              string `json:"note"` // the current step's note: the narration
	Step              int    `json:"step"` // 1-based index of the last step fired, 0 before the first
	Steps             int    `json:"steps"`
	WaitingToContinue bool   `json:"waitingToContinue"`
	Running           bool   `json:"running"`
}

// ScenarioInfo is one entry of the scenario catalogue shown in the picker.
type ScenarioInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// Source publishes the sandbox's state.
type Source interface {
	// Frame returns a full snapshot.
	Frame() Frame
	// Subscribe returns incremental frames in order on a bounded channel;
	// cancel stops the subscription. The server reads it from one goroutine
	// and never blocks on viewers.
	Subscribe() (frames <-chan Frame, cancel func())
}

// Controller carries out control commands from the page.
type Controller interface {
	Do(ctx context.Context, c Command) error
}

// Command is one control action from the page (POST /api/control).
type Command struct {
	Action   string     `json:"action"`
	Target   string     `json:"target,omitempty"`
	Groups   [][]string `json:"groups,omitempty"`
	Value    bool       `json:"value,omitempty"`
	Scenario string     `json:"scenario,omitempty"`
	YAML     string     `json:"yaml,omitempty"`
}

// TimedCommand is a command with the sandbox time at which it was carried out.
type TimedCommand struct {
	At time.Duration `json:"at"`
	Command
}

// Stats counts the server's viewers and frames.
type Stats struct {
	Viewers    int    `json:"viewers"`    // connected now
	Dropped    uint64 `json:"dropped"`    // viewers dropped for being slow
	FramesSent uint64 `json:"framesSent"` // websocket messages written, all viewers
	Recorded   int    `json:"recorded"`   // frames kept for /api/frames
}
