package lockserver

import (
	"errors"
	"net/http"
)

// Sentinel errors. The server returns them (wrapped) from its etcd logic and maps
// them to HTTP statuses only at the edge; the Client returns them (wrapped in an
// *Error or with the transport error) so callers can use errors.Is.
var (
	// ErrBusy: the lock is held by someone else (or queued waiters come first)
	// and the acquire's timeout passed. Nothing changed.
	ErrBusy = errors.New("lockserver: lock already held by another client")
	// ErrNotHeld: the token does not hold the lock (expired, released, someone
	// else's). Nothing changed.
	ErrNotHeld = errors.New("lockserver: not the holder")
	// ErrOutcomeUnknown: a write may or may not have taken effect.
	ErrOutcomeUnknown = errors.New("lockserver: outcome unknown")
	// ErrUnavailable: the request cannot have taken effect (etcd unreachable
	// before any write was sent, request never reached a lock server, ...).
	ErrUnavailable = errors.New("lockserver: unavailable")
	// ErrBadRequest: the request was rejected by validation. Nothing changed.
	ErrBadRequest = errors.New("lockserver: bad request")
)

// Stable error codes of the JSON error body {"success":false,"error":...,"code":...}.
const (
	CodeMalformedJSON        = "malformed_json"
	CodeUnknownField         = "unknown_field"
	CodeInvalidType          = "invalid_type"
	CodeMissingField         = "missing_field"
	CodeInvalidResourceID    = "invalid_resource_id"
	CodeInvalidTTL           = "invalid_ttl"
	CodeInvalidTimeout       = "invalid_timeout"
	CodeBodyTooLarge         = "body_too_large"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeNotFound             = "not_found"
	CodeUnauthorized         = "unauthorized"
	CodeForbidden            = "forbidden"
	CodeRateLimited          = "rate_limited"
	CodeLockBusy             = "lock_busy"
	CodeNotHolder            = "not_holder"
	CodeUnavailable          = "unavailable"
	CodeOutcomeUnknown       = "outcome_unknown"
	CodeInternal             = "internal"
)

// requestError is a validation failure with its HTTP status and code.
type requestError struct {
	status int
	code   string
	msg    string
}

func (e *requestError) Error() string { return "lockserver: " + e.msg }
func (e *requestError) Unwrap() error { return ErrBadRequest }

func badRequest(code, msg string) error {
	return &requestError{status: http.StatusBadRequest, code: code, msg: msg}
}

// httpError maps an error to (status, code, message) for the JSON error body.
func httpError(err error) (status int, code, msg string) {
	var re *requestError
	switch {
	case errors.As(err, &re):
		return re.status, re.code, re.msg
	case errors.Is(err, ErrBusy):
		return http.StatusConflict, CodeLockBusy, "lock already held by another client"
	case errors.Is(err, ErrNotHeld):
		return http.StatusConflict, CodeNotHolder, "the lock token does not hold this lock (expired, released, or someone else's)"
	case errors.Is(err, ErrOutcomeUnknown):
		return http.StatusGatewayTimeout, CodeOutcomeUnknown, "etcd did not answer in time; the request may or may not have taken effect"
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable, CodeUnavailable, "etcd is unavailable; the request did not take effect"
	default:
		return http.StatusInternalServerError, CodeInternal, "internal error"
	}
}
