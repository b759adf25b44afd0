package objstatus

import (
	"errors"
	"fmt"
)

// PermanentError is a problem with an object's spec, or with what it
// references, that only its user can fix (a missing Secret, a key that is
// not there, a field that does not parse). Reconcilers stall the object on
// it rather than retrying; the message says what to do.
type PermanentError struct{ msg string }

func (e *PermanentError) Error() string { return e.msg }

// Permanentf returns a PermanentError with a formatted message.
func Permanentf(format string, args ...any) error {
	return &PermanentError{fmt.Sprintf(format, args...)}
}

// IsPermanent reports whether err is, or wraps, a PermanentError. Any other
// error is transient: a failure to read (the apiserver, a server or the
// network did not answer), which a retry fixes.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}
