/// The kernel command line: `selftest` (default) or `bench` (with `smp`: the multiprocessor suite
/// instead of the default one), `scale=small|medium|large|N`,
/// `only=NAME` (run just that benchmark, e.g. `only=syscall`, to time or profile it alone),
/// `hz=N` (timer frequency, default 100), `inject-failure` (the self-test reports one extra failed
/// check, to test exit-status plumbing), `privileged-probe` (one CLI before the self-test: harmless
/// natively, a reflected #GP and a kernel panic in the paravirtual mode, to test the VMM's count of
/// privileged-instruction faults). Unknown words are ignored.
struct BootOptions {
  enum Mode { case selftest, bench }
  var mode = Mode.selftest
  /// Multiplier of every benchmark's base iteration count.
  var scale = 10
  var timerHertz = 100
  var injectFailure = false
  var privilegedProbe = false
  /// `bench smp`: the multiprocessor benchmarks.
  var multiprocessorBenchmarks = false
  /// `only=NAME`: the one benchmark to run (nil: the whole suite).
  var onlyBenchmark: Benchmark?

  /// Parses the NUL-terminated string at `address` (0 = none). Reads at most 256 bytes, and only
  /// from the identity-mapped first GiB.
  static func parse(address: UInt64) -> BootOptions {
    var options = BootOptions()
    guard address >= 0x1000, address < 0x4000_0000 - 256 else { return options }
    let text = UnsafePointer<UInt8>(bitPattern: UInt(address))!
    var length = 0
    while length < 256 && text[length] != 0 { length += 1 }
    var start = 0
    while start < length {
      var end = start
      while end < length && text[end] != 32 { end += 1 }
      options.apply(UnsafeBufferPointer(start: text + start, count: end - start))
      start = end + 1
    }
    return options
  }

  private mutating func apply(_ word: UnsafeBufferPointer<UInt8>) {
    if Self.equals(word, "selftest") {
      mode = .selftest
    } else if Self.equals(word, "bench") {
      mode = .bench
    } else if Self.equals(word, "smp") {
      multiprocessorBenchmarks = true
    } else if Self.equals(word, "inject-failure") {
      injectFailure = true
    } else if Self.equals(word, "privileged-probe") {
      privilegedProbe = true
    } else if let value = Self.value(word, key: "scale=") {
      if Self.equals(value, "small") {
        scale = 1
      } else if Self.equals(value, "medium") {
        scale = 10
      } else if Self.equals(value, "large") {
        scale = 100
      } else if let number = Self.number(value), number > 0 {
        scale = min(number, 1_000_000)
      }
    } else if let value = Self.value(word, key: "only=") {
      onlyBenchmark = Benchmark.allCases.first { Self.equals(value, $0.name) }
    } else if let value = Self.value(word, key: "hz="), let number = Self.number(value), number >= 19 {
      timerHertz = min(number, 10_000)
    }
  }

  private static func equals(_ word: UnsafeBufferPointer<UInt8>, _ literal: StaticString) -> Bool {
    literal.withUTF8Buffer { $0.elementsEqual(word) }
  }

  private static func value(_ word: UnsafeBufferPointer<UInt8>, key: StaticString) -> UnsafeBufferPointer<UInt8>? {
    let keyLength = key.utf8CodeUnitCount
    guard word.count >= keyLength else { return nil }
    let prefix = UnsafeBufferPointer(rebasing: word[0..<keyLength])
    guard equals(prefix, key) else { return nil }
    return UnsafeBufferPointer(rebasing: word[keyLength...])
  }

  private static func number(_ digits: UnsafeBufferPointer<UInt8>) -> Int? {
    guard !digits.isEmpty, digits.count <= 9 else { return nil }
    var value = 0
    for digit in digits {
      guard digit >= 48 && digit <= 57 else { return nil }
      value = value * 10 + Int(digit - 48)
    }
    return value
  }
}
