package lockserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
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

func checkResourceID(id *string) error {
	if id == nil {
		return badRequest(CodeMissingField, `missing required field "resourceId"`)
	}
	if !validResourceID(*id) {
		return badRequest(CodeInvalidResourceID, "resourceId must be 1-256 bytes of [A-Za-z0-9:._/-]")
	}
	return nil
}

func checkToken(tok *string) error {
	if tok == nil || *tok == "" {
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
	var b struct {
		ResourceID *string  `json:"resourceId"`
		TTL        *float64 `json:"ttl"`
		Timeout    *float64 `json:"timeout"`
		ClientID   *string  `json:"clientId"`
	}
	if err := decodeStrict(body, &b); err != nil {
		return acquireRequest{}, err
	}
	if err := checkResourceID(b.ResourceID); err != nil {
		return acquireRequest{}, err
	}
	if b.TTL == nil {
		return acquireRequest{}, badRequest(CodeMissingField, `missing required field "ttl"`)
	}
	ttl, err := checkTTL(*b.TTL, lim.MaxTTL)
	if err != nil {
		return acquireRequest{}, err
	}
	req := acquireRequest{ResourceID: *b.ResourceID, TTL: ttl}
	if b.Timeout != nil {
		t := *b.Timeout
		if !(t >= 0) || t > lim.MaxTimeout.Seconds() {
			return acquireRequest{}, badRequest(CodeInvalidTimeout, fmt.Sprintf("timeout must be in [0, %g] seconds", lim.MaxTimeout.Seconds()))
		}
		req.Timeout = seconds(t)
	}
	if b.ClientID != nil && *b.ClientID != "" {
		req.ClientID = *b.ClientID
	}
	return req, nil
}

// lockRef is the part of a release or renew body that names a held lock.
type lockRef struct {
	ResourceID *string `json:"resourceId"`
	LockToken  *string `json:"lockToken"`
}

// check validates the reference and returns the resource id and token.
func (b lockRef) check() (id, tok string, err error) {
	if err := checkResourceID(b.ResourceID); err != nil {
		return "", "", err
	}
	if err := checkToken(b.LockToken); err != nil {
		return "", "", err
	}
	return *b.ResourceID, *b.LockToken, nil
}

// parseRelease validates a release body (it has no ttl: lim is unused).
func parseRelease(body []byte, _ limits) (releaseRequest, error) {
	var b lockRef
	if err := decodeStrict(body, &b); err != nil {
		return releaseRequest{}, err
	}
	id, tok, err := b.check()
	return releaseRequest{ResourceID: id, LockToken: tok}, err
}

// parseRenew validates a renew body; ttl is optional.
func parseRenew(body []byte, lim limits) (renewRequest, error) {
	var b struct {
		ResourceID *string  `json:"resourceId"`
		LockToken  *string  `json:"lockToken"`
		TTL        *float64 `json:"ttl"`
	}
	if err := decodeStrict(body, &b); err != nil {
		return renewRequest{}, err
	}
	id, tok, err := lockRef{b.ResourceID, b.LockToken}.check()
	if err != nil {
		return renewRequest{}, err
	}
	req := renewRequest{ResourceID: id, LockToken: tok}
	if b.TTL != nil {
		if req.TTL, err = checkTTL(*b.TTL, lim.MaxTTL); err != nil {
			return renewRequest{}, err
		}
	}
	return req, nil
}
