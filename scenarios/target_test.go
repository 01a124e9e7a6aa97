package scenarios

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in   string
		want Target
	}{
		{"etcd-1", Target{Kind: "etcd", Name: "etcd-1", Index: 1}},
		{"etcd-3", Target{Kind: "etcd", Name: "etcd-3", Index: 3}},
		{"etcd:leader", Target{Kind: "etcd", Role: "leader"}},
		{"etcd:follower", Target{Kind: "etcd", Role: "follower"}},
		{"lockserver-12", Target{Kind: "lockserver", Name: "lockserver-12", Index: 12}},
		{"lockserver:any", Target{Kind: "lockserver", Role: "any"}},
		{"client-64", Target{Kind: "client", Name: "client-64", Index: 64}},
		{"client:holder", Target{Kind: "client", Role: "holder"}},
		{"balancer", Target{Kind: "balancer", Name: "balancer"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTarget(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.in, got.String(), "String round-trips")
			assert.Equal(t, tt.want.Role != "", got.IsRole())
		})
	}
}

func TestParseTargetRejects(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"", "want etcd-N"},
		{"etcd", "want etcd-N"},
		{"etcd-0", "numbers start at 1"},
		{"etcd-01", "numbers start at 1"},
		{"etcd--1", "numbers start at 1"},
		{"etcd-x", "numbers start at 1"},
		{"etcd-99999999999999999999", "numbers start at 1"},
		{"etcd:any", `etcd has the roles "leader", "follower"`},
		{"lockserver:leader", `lockserver has the role "any"`},
		{"client:any", `client has the role "holder"`},
		{"balancer-1", "want etcd-N"},
		{"balancer:any", "want etcd-N"},
		{"node-1", "want etcd-N"},
		{"Etcd-1", "want etcd-N"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseTarget(tt.in)
			require.ErrorIs(t, err, ErrBadTarget)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestParseLink(t *testing.T) {
	tests := []struct {
		in      string
		want    Link
		wantErr string
	}{
		{in: "etcd-1->etcd-2", want: Link{From: Target{Kind: "etcd", Name: "etcd-1", Index: 1}, To: Target{Kind: "etcd", Name: "etcd-2", Index: 2}}},
		{in: "etcd-1<->etcd-2", want: Link{From: Target{Kind: "etcd", Name: "etcd-1", Index: 1}, To: Target{Kind: "etcd", Name: "etcd-2", Index: 2}, Both: true}},
		{in: "client-1 -> balancer", want: Link{From: Target{Kind: "client", Name: "client-1", Index: 1}, To: Target{Kind: "balancer", Name: "balancer"}}},
		{in: "etcd-1-etcd-2", wantErr: `want "a->b" or "a<->b"`},
		{in: "etcd:leader->etcd-2", wantErr: "named components, not roles"},
		{in: "etcd-1->", wantErr: "want etcd-N"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseLink(tt.in)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, ErrBadTarget)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestParseAccepts guards against over-eager validation: every form the
// format documents must parse.
func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"crash leader with restart", step("{at: 1s, fault: crash, target: etcd:leader, restartAfter: 2s}")},
		{"crash follower", step("{at: 1s, fault: crash, target: etcd:follower}")},
		{"crash any lock server", step("{at: 1s, fault: crash, target: lockserver:any}")},
		{"restart a member", step("{at: 1s, fault: restart, target: etcd-2}")},
		{"pause the holder", step("{at: 1s, fault: pause, target: client:holder, for: 2s}")},
		{"pause a lock server", step("{at: 1s, fault: pause, target: lockserver-3}")},
		{"resume a client", step("{at: 1s, fault: resume, target: client-2}")},
		{"isolate a lock server", step("{at: 1s, fault: partition, isolate: lockserver-1, for: 1s}")},
		{"isolate the leader", step("{at: 1s, fault: partition, isolate: etcd:leader}")},
		{"groups with lock servers", step("{at: 1s, fault: partition, groups: [[etcd-1, lockserver-1], [etcd-2, etcd-3]]}")},
		{"bridge the leader", step("{at: 1s, fault: partition, bridge: etcd:leader}")},
		{"one way from a lock server", step("{at: 1s, fault: partition, from: lockserver-1, to: etcd:leader}")},
		{"delay balancer to lock server", step("{at: 1s, fault: delay, link: balancer->lockserver-2, latency: 10ms, jitter: 2ms, for: 1s}")},
		{"delay client to balancer", step("{at: 1s, fault: delay, link: client-1<->balancer, latency: 0.01}")},
		{"delay lock server to member", step("{at: 1s, fault: delay, link: lockserver-1->etcd-3, latency: 10ms}")},
		{"heal", step("{at: 10s, fault: heal, note: all good}")},
		{"negative clock skew", step("{at: 1s, fault: clock-skew, target: client:holder, skew: -3s, for: 2s}")},
		{"positive clock skew in seconds", step("{at: 1s, fault: clock-skew, target: client-1, skew: 1.5}")},
		{"when with timeout", step("{at: 0s, when: {holder: client-3, phase: before-write, timeout: 2s}, fault: pause, target: client-3}")},
		{"every phase", step("{at: 1s, when: {holder: client-1, phase: released}, fault: heal}")},
		{"anchors and aliases", "duration: 10s\nsteps:\n  - &p {at: 1s, fault: pause, target: client-1, for: 1s}\n  - *p\n"},
		{"empty blocks", "topology:\nlock:\nsteps:\nvariants:\n"},
		{"null variant", "variants:\n  plain:\n  unfenced: {fencing: false}\n"},
		{"every nemesis fault", "duration: 20s\nnemesis: {every: 4s, faults: [crash-member, crash-leader, restart-member, partition-minority, partition-leader, pause-client, pause-lockserver, crash-lockserver, delay-link, clock-skew]}\n"},
		{"classroom pace", "raft: {tickMs: 100, electionMs: 1000}\nlock: {ttl: 10s, wait: 5s}\n"},
		{"least connections and auth", "topology: {balancer: least-connections, lockServers: 16, clients: 64}\nlockServers: {auth: true}\n"},
		{"at equal to duration", step("{at: 10s, fault: heal}")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse("ok.yaml", []byte(tt.in))
			require.NoError(t, err, "input:\n%s", tt.in)
			require.NoError(t, s.Validate(), "a parsed scenario re-validates")
		})
	}
}
