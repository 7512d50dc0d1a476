package kube

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Errors of the API server, for errors.Is on an *APIError.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	ErrConflict      = errors.New("conflict: the object was changed since it was read")
	ErrForbidden     = errors.New("forbidden")
	ErrUnauthorized  = errors.New("unauthorized")
)

// APIError is an API server's answer other than success (a metav1.Status).
type APIError struct {
	Code      int    // HTTP status
	Reason    string // Status.reason: NotFound, AlreadyExists, Conflict, Forbidden...
	Message   string // Status.message
	Verb      string // get, create, update
	Namespace string
	Name      string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("kube: %s configmap %s/%s: %d %s", e.Verb, e.Namespace, e.Name, e.Code, e.Reason)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	switch e.Code {
	case http.StatusForbidden:
		msg += "; " + e.rbacHint()
	case http.StatusUnauthorized:
		msg += "; the credentials were refused (an expired token, or a kubeconfig for another cluster)"
	}
	return msg
}

// rbacHint says which rule the caller's Role lacks.
func (e *APIError) rbacHint() string {
	if e.Verb == "create" {
		// The API server authorises a create before the object has a name,
		// so resourceNames cannot restrict it.
		return fmt.Sprintf(`the Role bound to this account in namespace %s needs {apiGroups: [""], resources: [configmaps], verbs: [create]} (create cannot be limited by resourceNames)`, e.Namespace)
	}
	return fmt.Sprintf(`the Role bound to this account in namespace %s needs {apiGroups: [""], resources: [configmaps], resourceNames: [%s], verbs: [%s]}`, e.Namespace, e.Name, e.Verb)
}

// Is matches the sentinel errors by the Status reason, else the HTTP code.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Code == http.StatusNotFound
	case ErrAlreadyExists:
		return e.Code == http.StatusConflict && e.Reason == "AlreadyExists"
	case ErrConflict:
		return e.Code == http.StatusConflict && e.Reason != "AlreadyExists"
	case ErrForbidden:
		return e.Code == http.StatusForbidden
	case ErrUnauthorized:
		return e.Code == http.StatusUnauthorized
	}
	return false
}

// status is the part of a metav1.Status an error needs.
type status struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
	Reason  string `json:"reason"`
	Code    int    `json:"code"`
}

func statusError(code int, body []byte, verb, ns, name string) error {
	e := &APIError{Code: code, Verb: verb, Namespace: ns, Name: name, Reason: http.StatusText(code)}
	var st status
	if json.Unmarshal(body, &st) == nil && st.Kind == "Status" {
		if st.Reason != "" {
			e.Reason = st.Reason
		}
		e.Message = st.Message
	} else if len(body) > 0 {
		e.Message = clip(strings.TrimSpace(string(body)))
	}
	return e
}

func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}
