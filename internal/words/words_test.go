package words

import "testing"

func TestSuggest(t *testing.T) {
	tests := []struct{ got, want string }{
		{"pasue", `did you mean "pause"?`},
		{"PAUSE", `did you mean "pause"?`},
		{"explode", "want one of crash, pause, heal"},
	}
	for _, tt := range tests {
		t.Run(tt.got, func(t *testing.T) {
			if got := Suggest(tt.got, []string{"crash", "pause", "heal"}); got != tt.want {
				t.Errorf("Suggest(%q) = %q, want %q", tt.got, got, tt.want)
			}
		})
	}
}
