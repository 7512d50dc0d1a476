package csi

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"
)

// tokenPrefix versions the pagination token format.
const tokenPrefix = "v1."

var errBadToken = errors.New("invalid starting_token")

// encodeToken makes the starting_token of the page that begins with name.
// Tokens carry a name, not an index, so a volume deleted between two pages
// does not shift the next page (the next page starts at the first name >= the
// token's).
func encodeToken(name string) string {
	return tokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(name))
}

func decodeToken(tok string) (string, error) {
	rest, ok := strings.CutPrefix(tok, tokenPrefix)
	if !ok {
		return "", errBadToken
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(b) == 0 || !validVolumeID(string(b)) {
		return "", errBadToken
	}
	return string(b), nil
}

// page cuts one page out of sorted names: from the first name >= the token's
// name, at most max entries (0 means all). next is "" on the last page.
func page(sorted []string, token string, max int) (out []string, next string, err error) {
	start := 0
	if token != "" {
		name, err := decodeToken(token)
		if err != nil {
			return nil, "", err
		}
		start, _ = slices.BinarySearch(sorted, name)
	}
	end := len(sorted)
	if max > 0 && start+max < end {
		end = start + max
		next = encodeToken(sorted[end])
	}
	return sorted[start:end], next, nil
}
