package lockserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// maxBodyBytes is the largest accepted request body (413 above 64 KiB).
const maxBodyBytes = 64 << 10

// maxResourceIDLen is the longest accepted resourceId in bytes.
const maxResourceIDLen = 256

// defaultClientID is the ownerId stored when an acquire names no clientId.
const defaultClientID = "anonymous"

// acquireRequest is a validated POST /locks/acquire body. ClientID is empty
// when the body names none.
type acquireRequest struct {
	ResourceID string
	TTL        time.Duration
	Timeout    time.Duration
	ClientID   string
}

// releaseRequest is a validated POST /locks/release body.
type releaseRequest struct {
	ResourceID string
	LockToken  string
}

// renewRequest is a validated POST /locks/renew body. TTL is 0 when absent.
type renewRequest struct {
	ResourceID string
	LockToken  string
	TTL        time.Duration
}

// limits are the configured upper bounds of ttl and timeout.
type limits struct {
	MaxTTL     time.Duration
	MaxTimeout time.Duration
}

// validResourceID reports whether id is 1-256 bytes of [A-Za-z0-9:._/-].
func validResourceID(id string) bool {
	if len(id) == 0 || len(id) > maxResourceIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == ':', c == '.', c == '_', c == '/', c == '-':
		default:
			return false
		}
	}
	return true
}

// optString and optFloat are a body's field and whether it was present.
type optString struct {
	v  string
	ok bool
}

type optFloat struct {
	v  float64
	ok bool
}

func optS(p *string) optString {
	if p == nil {
		return optString{}
	}
	return optString{*p, true}
}

func optF(p *float64) optFloat {
	if p == nil {
		return optFloat{}
	}
	return optFloat{*p, true}
}

func checkResourceID(id optString) error {
	if !id.ok {
		return badRequest(CodeMissingField, `missing required field "resourceId"`)
	}
	if !validResourceID(id.v) {
		return badRequest(CodeInvalidResourceID, "resourceId must be 1-256 bytes of [A-Za-z0-9:._/-]")
	}
	return nil
}

func checkToken(tok optString) error {
	if !tok.ok || tok.v == "" {
		return badRequest(CodeMissingField, `missing required field "lockToken"`)
	}
	return nil
}

func checkTTL(ttl float64, max time.Duration) (time.Duration, error) {
	if !(ttl > 0) || ttl > max.Seconds() {
		return 0, badRequest(CodeInvalidTTL, fmt.Sprintf("ttl must be in (0, %g] seconds", max.Seconds()))
	}
	return seconds(ttl), nil
}

// seconds converts JSON seconds to a Duration.
func seconds(s float64) time.Duration { return time.Duration(math.Round(s * float64(time.Second))) }

// requestFields are the fields of any lock API body, as decoded: the fast
// path (scanFlatObject) when the body is plain, else encoding/json, which
// also rejects what the fast path leaves to it. allowed lists the fields
// the body may have.
type requestFields struct {
	resourceID, clientID, lockToken optString
	ttl, timeout                    optFloat
}

// Field names of the lock API bodies.
const (
	fResourceID = "resourceId"
	fClientID   = "clientId"
	fLockToken  = "lockToken"
	fTTL        = "ttl"
	fTimeout    = "timeout"
)

// decodeFields decodes body, which may hold only the allowed fields.
func decodeFields(body []byte, allowed ...string) (requestFields, error) {
	if f, ok := decodeFast(body, allowed); ok {
		return f, nil
	}
	return decodeSlow(body, allowed)
}

// decodeFast is the fast path; ok is false when body is for encoding/json.
func decodeFast(body []byte, allowed []string) (f requestFields, ok bool) {
	var buf [maxMembers]jsonMember
	ms, ok := scanFlatObject(body, &buf)
	if !ok {
		return requestFields{}, false
	}
	for _, m := range ms {
		if !slices.ContainsFunc(allowed, m.is) {
			return requestFields{}, false // unknown, or matched only case-insensitively
		}
		switch {
		case m.kind == 's' && m.is(fResourceID):
			f.resourceID = optString{m.str(), true}
		case m.kind == 's' && m.is(fClientID):
			f.clientID = optString{m.str(), true}
		case m.kind == 's' && m.is(fLockToken):
			f.lockToken = optString{m.str(), true}
		case m.kind == 'n' && m.is(fTTL):
			f.ttl.v, f.ttl.ok = m.float()
			if !f.ttl.ok {
				return requestFields{}, false
			}
		case m.kind == 'n' && m.is(fTimeout):
			f.timeout.v, f.timeout.ok = m.float()
			if !f.timeout.ok {
				return requestFields{}, false
			}
		default:
			return requestFields{}, false // a type encoding/json rejects
		}
	}
	return f, true
}

// decodeSlow decodes body with encoding/json into the struct of the
// allowed fields (unknown fields rejected), with stable error codes.
func decodeSlow(body []byte, allowed []string) (requestFields, error) {
	switch {
	case slices.Contains(allowed, fTimeout):
		var b struct {
			ResourceID *string  `json:"resourceId"`
			TTL        *float64 `json:"ttl"`
			Timeout    *float64 `json:"timeout"`
			ClientID   *string  `json:"clientId"`
		}
		err := decodeStrict(body, &b)
		return requestFields{resourceID: optS(b.ResourceID), ttl: optF(b.TTL), timeout: optF(b.Timeout), clientID: optS(b.ClientID)}, err
	case slices.Contains(allowed, fTTL):
		var b struct {
			ResourceID *string  `json:"resourceId"`
			LockToken  *string  `json:"lockToken"`
			TTL        *float64 `json:"ttl"`
		}
		err := decodeStrict(body, &b)
		return requestFields{resourceID: optS(b.ResourceID), lockToken: optS(b.LockToken), ttl: optF(b.TTL)}, err
	default:
		var b struct {
			ResourceID *string `json:"resourceId"`
			LockToken  *string `json:"lockToken"`
		}
		err := decodeStrict(body, &b)
		return requestFields{resourceID: optS(b.ResourceID), lockToken: optS(b.LockToken)}, err
	}
}

// decodeStrict decodes exactly one JSON value into v, rejecting unknown fields
// and trailing data, and classifies failures into stable codes.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &typ):
			field := typ.Field
			if field == "" {
				return badRequest(CodeInvalidType, "request body must be a JSON object")
			}
			return badRequest(CodeInvalidType, fmt.Sprintf("field %q must be a JSON %s", field, jsonKind(typ.Type.Kind().String())))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return badRequest(CodeUnknownField, strings.TrimPrefix(err.Error(), "json: "))
		case errors.As(err, &syn), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return badRequest(CodeMalformedJSON, "request body is not valid JSON")
		default:
			return badRequest(CodeMalformedJSON, "request body is not valid JSON: "+strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest(CodeMalformedJSON, "request body must hold exactly one JSON object")
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "float64", "float32", "int", "int64":
		return "number"
	case "ptr", "string":
		return "string"
	}
	return goKind
}

// parseAcquire validates an acquire body.
func parseAcquire(body []byte, lim limits) (acquireRequest, error) {
	b, err := decodeFields(body, fResourceID, fTTL, fTimeout, fClientID)
	if err != nil {
		return acquireRequest{}, err
	}
	if err := checkResourceID(b.resourceID); err != nil {
		return acquireRequest{}, err
	}
	if !b.ttl.ok {
		return acquireRequest{}, badRequest(CodeMissingField, `missing required field "ttl"`)
	}
	ttl, err := checkTTL(b.ttl.v, lim.MaxTTL)
	if err != nil {
		return acquireRequest{}, err
	}
	req := acquireRequest{ResourceID: b.resourceID.v, TTL: ttl}
	if b.timeout.ok {
		t := b.timeout.v
		if !(t >= 0) || t > lim.MaxTimeout.Seconds() {
			return acquireRequest{}, badRequest(CodeInvalidTimeout, fmt.Sprintf("timeout must be in [0, %g] seconds", lim.MaxTimeout.Seconds()))
		}
		req.Timeout = seconds(t)
	}
	if b.clientID.ok && b.clientID.v != "" {
		req.ClientID = b.clientID.v
	}
	return req, nil
}

// checkRef validates the part of a release or renew body that names a held
// lock and returns the resource id and token.
func checkRef(b requestFields) (id, tok string, err error) {
	if err := checkResourceID(b.resourceID); err != nil {
		return "", "", err
	}
	if err := checkToken(b.lockToken); err != nil {
		return "", "", err
	}
	return b.resourceID.v, b.lockToken.v, nil
}

// parseRelease validates a release body (it has no ttl: lim is unused).
func parseRelease(body []byte, _ limits) (releaseRequest, error) {
	b, err := decodeFields(body, fResourceID, fLockToken)
	if err != nil {
		return releaseRequest{}, err
	}
	id, tok, err := checkRef(b)
	return releaseRequest{ResourceID: id, LockToken: tok}, err
}

// parseRenew validates a renew body; ttl is optional.
func parseRenew(body []byte, lim limits) (renewRequest, error) {
	b, err := decodeFields(body, fResourceID, fLockToken, fTTL)
	if err != nil {
		return renewRequest{}, err
	}
	id, tok, err := checkRef(b)
	if err != nil {
		return renewRequest{}, err
	}
	req := renewRequest{ResourceID: id, LockToken: tok}
	if b.ttl.ok {
		if req.TTL, err = checkTTL(b.ttl.v, lim.MaxTTL); err != nil {
			return renewRequest{}, err
		}
	}
	return req, nil
}
