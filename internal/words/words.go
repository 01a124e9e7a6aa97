// Package words writes the small phrases that locksim's error messages
// share: "want one of a, b, c" and "did you mean "x"?".
//
// # Concurrency
//
// Every function is pure.
package words

import (
	"fmt"
	"strings"
)

// OneOf renders "want one of a, b, c".
func OneOf(items []string) string { return "want one of " + strings.Join(items, ", ") }

// Suggest returns `did you mean "x"?` for a near miss (an edit distance of
// at most 2, ignoring case), or else OneOf(allowed).
func Suggest(got string, allowed []string) string {
	best, bestDist := "", 3
	for _, a := range allowed {
		if d := editDistance(strings.ToLower(got), strings.ToLower(a)); d < bestDist {
			best, bestDist = a, d
		}
	}
	if best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	return OneOf(allowed)
}

// editDistance is the Levenshtein distance of two short words.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		return 99
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
