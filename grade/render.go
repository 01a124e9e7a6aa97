package grade

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/locksim/locksim/conformance"
)

// verdictLine is the card's last word.
func (c *Card) verdictLine() string {
	switch {
	case c.Pass:
		return "PASS: nothing was violated"
	case c.Violated:
		return fmt.Sprintf("FAIL: %d finding(s), something was violated", len(c.Findings))
	}
	return fmt.Sprintf("NOT PROVEN: %d run(s) could not be checked", len(c.Findings))
}

func batteryLine(r *conformance.Report) string {
	pass, fail, skip := r.Count()
	return fmt.Sprintf("%d passed, %d failed, %d skipped", pass, fail, skip)
}

// Text is the card as the terminal shows it.
func (c *Card) Text() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "lock server: %s\n", c.LockServer)
	if c.Battery != nil {
		fmt.Fprintf(&b, "API conformance: %s\n", batteryLine(c.Battery))
		for _, ch := range c.Battery.Checks {
			if ch.Result != conformance.Pass {
				fmt.Fprintf(&b, "  %s %s: %s\n", strings.ToUpper(string(ch.Result)), ch.Name, ch.Detail)
			}
		}
	}
	tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tVARIANT\tSEED\tLOCK\tRESOURCE\tACQUIRES ok/fail/unknown\tAVAILABLE DURING FAULTS\tOTHERWISE\tRESULT")
	for _, r := range c.Runs {
		result := "PASS"
		if !r.Pass() {
			result = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d/%d/%d\t%s\t%s\t%s\n", r.Scenario, r.Variant, r.Seed, r.Lock, r.Resource,
			r.Acquires.OK, r.Acquires.Fail, r.Acquires.Unknown, r.Availability.DuringFaults, r.Availability.Otherwise, result)
	}
	tw.Flush()
	for _, r := range c.Runs {
		for _, e := range r.Explanations {
			fmt.Fprintf(&b, "  %s/%s seed %d: %s\n", r.Scenario, r.Variant, r.Seed, e)
		}
	}
	fmt.Fprintf(&b, "%s (%s)\n", c.verdictLine(), c.Elapsed.Round(time.Second))
	return b.String()
}

// Markdown is the card as report.md; links are relative to dir.
func (c *Card) Markdown(dir string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Report card\n\n**Lock server:** `%s`  \n**Seeds:** %v  \n**Verdict:** %s\n\n", c.LockServer, c.Seeds, c.verdictLine())
	for _, f := range c.Findings {
		fmt.Fprintf(&b, "- %s\n", f)
	}
	if len(c.Findings) > 0 {
		b.WriteString("\n")
	}
	if c.Battery != nil {
		fmt.Fprintf(&b, "## API conformance (%s)\n\n| check | result | what it checks | detail |\n|---|---|---|---|\n", batteryLine(c.Battery))
		for _, ch := range c.Battery.Checks {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", ch.Name, ch.Result, mdCell(ch.About), mdCell(ch.Detail))
		}
		b.WriteString("\n")
	}
	b.WriteString("## Fault scenarios\n\nAvailability: acquires answered (granted, or refused as lock_busy) among those called while a fault was in effect, and otherwise.\n\n")
	b.WriteString("| scenario | variant | seed | lock | resource | acquires ok/fail/unknown | available during faults | otherwise | porcupine |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range c.Runs {
		link := "-"
		if r.HTML != "" {
			link = fmt.Sprintf("[history.html](%s)", rel(dir, r.HTML))
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %d/%d/%d | %s | %s | %s |\n", r.Scenario, r.Variant, r.Seed,
			mark(string(r.Lock)), mark(string(r.Resource)), r.Acquires.OK, r.Acquires.Fail, r.Acquires.Unknown,
			r.Availability.DuringFaults, r.Availability.Otherwise, link)
	}
	for _, r := range c.Runs {
		for _, e := range r.Explanations {
			fmt.Fprintf(&b, "\n**%s/%s seed %d:** %s\n", r.Scenario, r.Variant, r.Seed, mdCell(e))
		}
	}
	return b.Bytes()
}

func mark(verdict string) string {
	if verdict == "violated" {
		return "**violated**"
	}
	return verdict
}

func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

var page = template.Must(template.New("card").Funcs(template.FuncMap{"rel": rel}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>locksim report card</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}.pass{color:#186a1f}.fail{color:#b00020;font-weight:bold}.skip{color:#777}code{background:#f4f4f4;padding:0 .2em}
</style></head><body>
<h1>Report card</h1>
<p><b>Lock server:</b> <code>{{.Card.LockServer}}</code><br><b>Seeds:</b> {{.Card.Seeds}}<br>
<b>Verdict:</b> <span class="{{if .Card.Pass}}pass{{else}}fail{{end}}">{{.Verdict}}</span></p>
{{if .Card.Findings}}<ul>{{range .Card.Findings}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{with .Card.Battery}}<h2>API conformance ({{$.Battery}})</h2>
<table><tr><th>check</th><th>result</th><th>what it checks</th><th>detail</th></tr>
{{range .Checks}}<tr><td>{{.Name}}</td><td class="{{.Result}}">{{.Result}}</td><td>{{.About}}</td><td>{{.Detail}}</td></tr>
{{end}}</table>{{end}}
<h2>Fault scenarios</h2>
<p>Availability: acquires answered (granted, or refused as lock_busy) among those called while a fault was in effect, and otherwise.</p>
<table><tr><th>scenario</th><th>variant</th><th>seed</th><th>lock</th><th>resource</th><th>acquires ok/fail/unknown</th><th>available during faults</th><th>otherwise</th><th>porcupine</th></tr>
{{range .Card.Runs}}<tr><td>{{.Scenario}}</td><td>{{.Variant}}</td><td>{{.Seed}}</td>
<td class="{{if eq (print .Lock) "linearizable"}}pass{{else}}fail{{end}}">{{.Lock}}</td>
<td class="{{if eq (print .Resource) "linearizable"}}pass{{else}}fail{{end}}">{{.Resource}}</td>
<td>{{.Acquires.OK}}/{{.Acquires.Fail}}/{{.Acquires.Unknown}}</td><td>{{.Availability.DuringFaults}}</td><td>{{.Availability.Otherwise}}</td>
<td>{{if .HTML}}<a href="{{rel $.Dir .HTML}}">history.html</a>{{end}}</td></tr>
{{range .Explanations}}<tr><td colspan="9">{{.}}</td></tr>{{end}}{{end}}
</table></body></html>
`))

// HTML is the card as index.html, linking each run's porcupine view
// (paths relative to dir).
func (c *Card) HTML(dir string) []byte {
	var b bytes.Buffer
	data := struct {
		Card             *Card
		Verdict, Battery string
		Dir              string
	}{Card: c, Verdict: c.verdictLine(), Dir: dir}
	if c.Battery != nil {
		data.Battery = batteryLine(c.Battery)
	}
	if err := page.Execute(&b, data); err != nil {
		return []byte("template: " + err.Error())
	}
	return b.Bytes()
}
