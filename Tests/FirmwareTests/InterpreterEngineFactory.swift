import VMM

/// The interp engine for the firmware tests, or nil after printing why the test skips.
func interpreterEngine(_ test: String = #function) -> (any Engine)? {
  print("SKIP: the interp engine is not in this build yet (branch interp); \(test) on interp needs it")
  return nil
}
