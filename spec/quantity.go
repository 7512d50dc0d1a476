package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// unit is one size suffix and its multiplier in bytes.
type unit struct {
	suffix string
	mult   int64
}

// binaryUnits and decimalUnits are ordered largest first so String can pick
// the largest exact one.
var (
	binaryUnits = []unit{{"Pi", 1 << 50}, {"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}}
	// "k" is lowercase as in Kubernetes quantities; "K" would read as a typo
	// for "Ki", so it is rejected with a hint instead.
	decimalUnits = []unit{{"P", 1e15}, {"T", 1e12}, {"G", 1e9}, {"M", 1e6}, {"k", 1e3}}
)

// maxQuantityLen bounds the input so big-number arithmetic stays cheap on
// hostile input; no real size needs more characters.
const maxQuantityLen = 64

// ParseQuantity parses a size: plain bytes ("1048576"), a binary unit
// ("512Mi", "20Gi", "1Ti"), or a decimal unit ("500M", "2T"). A decimal
// mantissa ("1.5Gi") is accepted only when it is an exact number of bytes.
// The arithmetic is exact (math/big), so no precision is ever lost.
func ParseQuantity(s string) (Quantity, error) {
	if s == "" {
		return Quantity{}, errors.New("empty size; write bytes or a number with a unit, e.g. 20Gi")
	}
	if len(s) > maxQuantityLen {
		return Quantity{}, fmt.Errorf("size is %d characters long; write it with a unit, e.g. 20Gi", len(s))
	}
	num, mult := s, int64(1)
	for _, u := range append(append([]unit(nil), binaryUnits...), decimalUnits...) {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	intPart, frac, hasDot := strings.Cut(num, ".")
	if !allDigits(intPart) || (hasDot && !allDigits(frac)) {
		return Quantity{}, fmt.Errorf("%q is not a size; write bytes or a number with one of the units Ki Mi Gi Ti Pi (powers of 1024) or k M G T P (powers of 1000), e.g. 20Gi", s)
	}
	// value = (intPart.frac) * mult, computed as digits * mult / 10^len(frac).
	digits, ok := new(big.Int).SetString(intPart+frac, 10)
	if !ok {
		return Quantity{}, fmt.Errorf("%q is not a size", s)
	}
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil)
	prod := new(big.Int).Mul(digits, big.NewInt(mult))
	q, r := new(big.Int).QuoRem(prod, scale, new(big.Int))
	if r.Sign() != 0 {
		return Quantity{}, fmt.Errorf("%q is not a whole number of bytes; use a smaller unit", s)
	}
	if !q.IsInt64() {
		return Quantity{}, fmt.Errorf("%q is too large (the limit is %d bytes)", s, int64(math.MaxInt64))
	}
	return Quantity{Bytes: q.Int64()}, nil
}

// allDigits reports whether s is a non-empty run of ASCII digits.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String returns the shortest exact form of q: "20Gi", "1500M", "1048577".
// Binary units win ties because volume sizes are usually powers of two.
func (q Quantity) String() string {
	best := strconv.FormatInt(q.Bytes, 10)
	if q.Bytes <= 0 {
		return best
	}
	for _, units := range [][]unit{binaryUnits, decimalUnits} {
		for _, u := range units {
			if q.Bytes%u.mult == 0 {
				if c := strconv.FormatInt(q.Bytes/u.mult, 10) + u.suffix; len(c) < len(best) {
					best = c
				}
				break
			}
		}
	}
	return best
}

// IsZero lets yaml.v3's omitempty drop an unset size.
func (q Quantity) IsZero() bool { return q.Bytes == 0 }

// MarshalYAML writes the shortest exact form.
func (q Quantity) MarshalYAML() (any, error) { return q.String(), nil }

// UnmarshalYAML accepts a YAML integer (bytes) or a string with a unit.
func (q *Quantity) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("size must be a scalar such as 20Gi")
	}
	v, err := ParseQuantity(n.Value)
	if err != nil {
		return err
	}
	*q = v
	return nil
}

// MarshalJSON writes the shortest exact form as a JSON string.
func (q Quantity) MarshalJSON() ([]byte, error) { return json.Marshal(q.String()) }

// UnmarshalJSON accepts a JSON string ("20Gi") or an integer number of bytes.
func (q *Quantity) UnmarshalJSON(b []byte) error {
	var s string
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	} else {
		s = string(b)
	}
	v, err := ParseQuantity(s)
	if err != nil {
		return err
	}
	*q = v
	return nil
}

// MaxVolumeSize is the largest volume size rds-reconcile accepts: 1 PiB,
// far beyond a full RDS (20 U.2 drives), yet small enough that no size
// arithmetic (rounding, sums of several volumes) comes near int64. The
// largest file-size RouterOS itself takes is not documented (see
// docs/rds.md).
const MaxVolumeSize int64 = 1 << 50

// RoundUpSize rounds a byte count up to the next multiple of SizeAlign, for
// CSI requests that name a minimum size. Counts <= 0 give SizeAlign (the
// smallest valid volume). ok is false for a count over MaxVolumeSize: the
// count is checked before any arithmetic, so nothing overflows and no
// size is silently cut to a smaller one.
func RoundUpSize(bytes int64) (size int64, ok bool) {
	if bytes <= 0 {
		return SizeAlign, true
	}
	if bytes > MaxVolumeSize {
		return 0, false
	}
	// bytes <= MaxVolumeSize (aligned), so the sum cannot overflow and the
	// result is at most MaxVolumeSize.
	return (bytes + SizeAlign - 1) / SizeAlign * SizeAlign, true
}

// sizeError explains a size that is not a valid volume size (not positive,
// misaligned or over MaxVolumeSize) and names the nearest valid ones.
func sizeError(bytes int64) string {
	if bytes > MaxVolumeSize {
		q := Quantity{bytes}.String()
		if q != strconv.FormatInt(bytes, 10) {
			q += fmt.Sprintf(" (%d bytes)", bytes)
		} else {
			q += " bytes"
		}
		return fmt.Sprintf("size %s is more than %s, the largest volume size", q, Quantity{MaxVolumeSize})
	}
	down := bytes / SizeAlign * SizeAlign
	if down <= 0 {
		return fmt.Sprintf("size %d bytes is not a positive multiple of 1Mi (1048576 bytes); the smallest valid size is %s", bytes, Quantity{SizeAlign})
	}
	up, _ := RoundUpSize(bytes) // bytes <= MaxVolumeSize here
	return fmt.Sprintf("size %d bytes is not a multiple of 1Mi (1048576 bytes); use %s or %s", bytes, Quantity{down}, Quantity{up})
}

// String writes the duration as time.Duration does ("1s", "1m30s").
func (d Duration) String() string { return d.Duration.String() }

// IsZero lets yaml.v3's omitempty drop an unset duration.
func (d Duration) IsZero() bool { return d.Duration == 0 }

// MarshalYAML writes "1s"-style text.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML accepts Go duration text: "500ms", "10s", "1m30s".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("duration must be a scalar such as 10s")
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes the duration as a JSON string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON accepts a JSON string such as "10s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("duration must be a string such as \"10s\"")
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	if allDigits(s) && s != "0" {
		if len(s) > maxEcho {
			return 0, fmt.Errorf("duration %q needs a unit, e.g. 10s", clip(s))
		}
		return 0, fmt.Errorf("duration %q needs a unit, e.g. %ss", s, s)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration; write e.g. 500ms, 10s or 1m30s", clip(s))
	}
	return v, nil
}
