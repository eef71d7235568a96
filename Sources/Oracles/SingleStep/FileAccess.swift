import Foundation

/// Reads a whole file, throwing a one-line error when it cannot.
func readFileBytes(_ path: String) throws(SingleStepDataError) -> [UInt8] {
  guard let data = FileManager.default.contents(atPath: path) else {
    throw SingleStepDataError("cannot read \(path)")
  }
  return [UInt8](data)
}
