package rds

// OutputError exposes outputError to the corpus test (package rds_test).
func OutputError(out string) error { return outputError("corpus", "", "", out) }
