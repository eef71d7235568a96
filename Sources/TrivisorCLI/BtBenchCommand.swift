import ArgumentParser
import Benchmarks
import Foundation
import GuestImages
import Launcher
import StaticTranslator
import Translator
import VMM

/// `trivisor bench bt` (issue #18): the same guests on the interpreter (`interp`), dynamic
/// translation (`dbt`) and static translation with fallback (`sbt`), one table per guest: start-up,
/// translation time (online and offline), steady-state speed, code-cache size, coverage per
/// technique, and the engines' tested behaviour on self-modifying code and precise faults.
struct BtBenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bt",
    abstract: "Interpretation, dynamic and static binary translation compared on the same guests.",
    discussion: """
      Runs each guest on interp, dbt and sbt (--rounds times each; medians). sbt's translation file \
      is made in-process by the translate step (timed as the offline translation time) into a \
      temporary file that is deleted afterwards; an image the static translator refuses (real-mode \
      code) runs on sbt without a file, which is dbt. Guests: kernel-bench (the reference kernel's \
      'bench scale=N', ns/op per benchmark), selftest (the reference kernel's self-test), alu-loop \
      (bench cpu's loop in 64-bit mode: ns per guest instruction from a long and a 1-iteration run), \
      seabios (/usr/share/seabios/bios.bin up to "Booting from", skipped when missing). Rows: time \
      to first console byte, total wall time, online translation time (dbt-translation-ns), offline \
      translation time, code-cache bytes (dbt-host-bytes), the shares of guest instructions run by \
      file code, run-time code and the interpreter, ns/op. Then two probe guests per engine: one \
      that patches code it already ran (its output must equal the interpreter's) and one whose \
      load faults in the middle of a block (the stop must show the faulting RIP with the earlier \
      instructions done and the faulting one not).
      """
  )

  /// The guests, in table order (`--only` names).
  static let guestNames = ["kernel-bench", "selftest", "alu-loop", "seabios"]

  /// Where the Debian seabios package puts SeaBIOS.
  static let seabiosPath = "/usr/share/seabios/bios.bin"

  /// The text that marks SeaBIOS's boot step.
  static let seabiosBootText = "Booting from"

  /// Kernel benchmark scale per engine: seconds per run (interp is ~100x slower than dbt).
  static let kernelScales = [
    "interp": isDebugBuild ? 1 : 10, "dbt": isDebugBuild ? 1 : 1000, "sbt": isDebugBuild ? 1 : 1000,
  ]

  /// ALU loop iterations per engine (the long run; the short one has 1).
  static let loopIterations: [String: UInt32] = [
    "interp": isDebugBuild ? 20_000 : 2_000_000, "dbt": isDebugBuild ? 200_000 : 50_000_000,
    "sbt": isDebugBuild ? 200_000 : 50_000_000,
  ]

  @Option(help: "Also write the results as JSON to this file.")
  var json: String?

  @Option(help: "Also draw the ns/op rows as an SVG bar chart (log scale) to this file.")
  var svg: String?

  @Option(help: "Runs per engine and guest (medians are reported).")
  var rounds = 3

  @Option(help: "Measure only this guest (repeatable): kernel-bench, selftest, alu-loop, seabios.")
  var only: [String] = []

  @Option(help: "Seconds each run may take.")
  var timeout: Double = 300

  @Flag(name: .customLong("allow-debug"), help: "Run even in a debug build (numbers are meaningless).")
  var allowDebug = false

  /// The guests to measure, after checking the options (one usage line for each mistake).
  func checkedGuests() throws -> [String] {
    guard (1...100).contains(rounds) else { throw usageFailure("--rounds must be between 1 and 100") }
    guard timeout > 0 && timeout.isFinite else { throw usageFailure("--timeout must be a positive number") }
    for name in only where !Self.guestNames.contains(name) {
      throw usageFailure("unknown guest '\(name)' for --only (choose from \(Self.guestNames.joined(separator: ", ")))")
    }
    return only.isEmpty ? Self.guestNames : Self.guestNames.filter { only.contains($0) }
  }

  /// Measures the chosen guests and the behaviour probes, prints the tables and writes `--json`
  /// and `--svg`; exits with the engine-error status when a run failed.
  func run() throws {
    let guests = try checkedGuests()
    try BenchmarkOptions.requireReleaseBuild(allowDebug: allowDebug, command: "bench bt")
    var results: [BtBenchReport.Guest] = []
    var notes: [String] = []
    for name in guests {
      progress("\(name): measuring")
      switch name {
      case "kernel-bench":
        results.append(
          measureImage(
            name: name,
            description: "the reference kernel, 'bench scale=N' (interp N=\(Self.kernelScales["interp"]!), "
              + "dbt and sbt N=\(Self.kernelScales["dbt"]!)); ns/op from its BENCH lines",
            source: .kernel(commandLineFor: {
              ReferenceKernelOutput.benchCommandLine(scale: Self.kernelScales[$0] ?? 1)
            }))
        )
      case "selftest":
        results.append(
          measureImage(
            name: name, description: "the reference kernel's self-test (default command line) to its exit",
            source: .kernel(commandLineFor: { _ in "" })))
      case "alu-loop":
        results.append(measureLoop())
      default:
        if FileManager.default.isReadableFile(atPath: Self.seabiosPath) {
          results.append(
            measureImage(
              name: name,
              description: "SeaBIOS (\(Self.seabiosPath)) from the reset vector to '\(Self.seabiosBootText)'",
              source: .firmware(path: Self.seabiosPath)))
        } else {
          results.append(
            .init(
              name: name, description: "SeaBIOS to its boot step", columns: [],
              note: "skipped: \(Self.seabiosPath) is missing (Debian: apt-get install seabios)"))
          notes.append("seabios not measured: \(Self.seabiosPath) missing")
        }
      }
    }
    progress("behaviour probes")
    let behaviour = BtBehaviourProbes.runAll(timeoutSeconds: min(timeout, 60))
    let report = BtBenchReport(
      host: HostDescription.current, date: ISO8601DateFormatter().string(from: Date()),
      buildConfiguration: isDebugBuild ? "debug" : "release", rounds: rounds, guests: results, behaviour: behaviour,
      notes: notes + [
        "sbt's offline translation is discovery, compiling and writing the file; loading and hashing it is in sbt's "
          + "wall time", HostDescription.load,
      ])
    print(report.text)
    if let path = json {
      do { try report.json().write(to: URL(fileURLWithPath: path)) } catch {
        throw usageFailure("cannot write '\(path)': \(error.localizedDescription)")
      }
    }
    if let path = svg {
      do {
        try SVGChart(table: report.chartTable, title: "interp, dbt and sbt (bench bt)").svg.write(
          toFile: path, atomically: true, encoding: .utf8)
      } catch {
        throw usageFailure("cannot write '\(path)': \(error.localizedDescription)")
      }
    }
    let failed = results.contains { $0.columns.contains { $0.failure != nil } }
    if failed { throw ExitCode(ExitStatus.engineError) }
  }

  /// What a measured image guest boots from.
  enum ImageSource {
    /// The reference kernel with the command line each engine gets.
    case kernel(commandLineFor: (String) -> String)
    /// A PC BIOS image started at the reset vector, run until `seabiosBootText`.
    case firmware(path: String)
  }

  /// One guest on the three engines, `rounds` times each; sbt gets a translation file made first.
  private func measureImage(name: String, description: String, source: ImageSource) -> BtBenchReport.Guest {
    var columns: [BtBenchReport.Column] = []
    for engine in BtBenchReport.engines {
      var runs: [BtRunner.Observation] = []
      var offline: [Double] = []
      var note: String?
      var failure: String?
      for _ in 0..<rounds {
        do {
          var set: StaticTranslationSet?
          if engine == "sbt" {
            switch try Self.translateOffline(source) {
            case .made(let s, let seconds):
              set = s
              offline.append(seconds)
            case .refused(let why):
              note = "no translation file (\(why)): sbt ran as dbt"
            }
          }
          let observed = try BtRunner.run(source: source, engine: engine, translations: set, timeout: timeout)
          if let f = observed.failure {
            failure = f
            break
          }
          runs.append(observed)
        } catch {
          failure = "\(error)"
          break
        }
      }
      var column = BtRunner.summarize(engine: engine, runs: runs)
      column.offlineTranslationSeconds = offline.isEmpty ? nil : median(offline)
      column.failure = failure
      column.note = note
      progress("\(name): \(engine) done" + (failure.map { ": FAILED: \($0)" } ?? ""))
      columns.append(column)
    }
    return .init(name: name, description: description, columns: columns)
  }

  /// The outcome of the translate step.
  enum OfflineTranslation {
    /// A set loaded back from the temporary file, and the seconds translating and writing took.
    case made(StaticTranslationSet, seconds: Double)
    /// The translator refused the image.
    case refused(String)
  }

  /// Translates the guest as `trivisor translate` would into a temporary file (deleted
  /// afterwards) and reads it back; the time covers translating, serializing and writing.
  static func translateOffline(_ source: ImageSource) throws -> OfflineTranslation {
    let image: [UInt8]
    let options: LoadOptions
    switch source {
    case .kernel:
      image = try GuestImages.referenceKernel
      options = LoadOptions(imagePath: GuestImages.referenceKernelName)
    case .firmware:
      return .refused("firmware starts in real mode, which the static translator does not take")
    }
    let start = DispatchTime.now().uptimeNanoseconds
    let report: StaticTranslation.Report
    do throws(TranslationFileError) { report = try StaticTranslation.translate(image: image, options: options) } catch {
      return .refused(error.description)
    }
    let path = FileManager.default.temporaryDirectory.appendingPathComponent(
      "trivisor-bench-bt-\(getpid())-\(start).tbt"
    ).path
    defer { try? FileManager.default.removeItem(atPath: path) }
    try Data(report.file.serialized()).write(to: URL(fileURLWithPath: path))
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    do throws(TranslationFileError) {
      return .made(try StaticTranslationSet(contentsOf: path), seconds: seconds)
    } catch {
      return .refused(error.description)
    }
  }

  /// The ALU loop in 64-bit mode: ns per guest instruction from a long run less a 1-iteration run.
  private func measureLoop() -> BtBenchReport.Guest {
    var columns: [BtBenchReport.Column] = []
    for engine in BtBenchReport.engines {
      let iterations = Self.loopIterations[engine] ?? 1000
      var perInstruction: [Double] = []
      var walls: [Double] = []
      var failure: String?
      for _ in 0..<rounds {
        do {
          let long = try EngineLoopRun.run(
            engine: try EngineRegistry.make(engine), mode: .long64, iterations: iterations, timeoutSeconds: timeout)
          let short = try EngineLoopRun.run(
            engine: try EngineRegistry.make(engine), mode: .long64, iterations: 1, timeoutSeconds: timeout)
          walls.append(long.wallSeconds)
          perInstruction.append(
            max(long.wallSeconds - short.wallSeconds, 0) * 1e9 / Double(ModeLoop.instructions(iterations: iterations)))
        } catch {
          failure = "\(error)"
          break
        }
      }
      var column = BtBenchReport.Column(engine: engine)
      if !walls.isEmpty {
        column.wallSeconds = median(walls)
        column.nanosecondsPerOperation["per-instruction"] = median(perInstruction)
      }
      column.failure = failure
      if engine == "sbt" {
        column.note =
          "no translation file (the loop is a real-mode boot sector that switches modes itself, "
          + "which the static translator does not take): sbt ran as dbt"
      }
      progress("alu-loop: \(engine) done" + (failure.map { ": FAILED: \($0)" } ?? ""))
      columns.append(column)
    }
    return .init(
      name: "alu-loop",
      description: "bench cpu's ALU loop (add, xor, rol, dec, jnz) in 64-bit mode, "
        + "\(Self.loopIterations["interp"]!) iterations on interp, \(Self.loopIterations["dbt"]!) on dbt and sbt",
      columns: columns)
  }

  private func progress(_ line: String) { printError("bench bt: \(line)") }
}

/// One run of a guest on one engine, observed from the outside: console timing, wall time, the
/// engine's counters.
enum BtRunner {
  /// What one run showed.
  struct Observation {
    /// Seconds from the start to the first console byte (nil: the guest printed nothing).
    var firstOutputSeconds: Double?
    /// Seconds of the whole run.
    var wallSeconds: Double
    /// The console output.
    var output: String
    /// The engine's counters by name.
    var counters: [String: UInt64]
    /// Guest instructions retired (nil when the engine does not count).
    var instructions: UInt64?
    /// Why the run did not end as expected (nil when it did).
    var failure: String?
  }

  /// Collects console bytes and the time of the first.
  final class Console: @unchecked Sendable {
    private let lock = NSLock()
    private var bytes: [UInt8] = []
    private let start: UInt64
    /// Nanoseconds from `start` to the first byte.
    private(set) var firstByteNanoseconds: UInt64?

    /// A console whose times count from `start` (`DispatchTime` nanoseconds).
    init(start: UInt64) { self.start = start }

    /// Records `chunk`.
    func append(_ chunk: [UInt8]) {
      lock.lock()
      defer { lock.unlock() }
      if firstByteNanoseconds == nil && !chunk.isEmpty {
        firstByteNanoseconds = DispatchTime.now().uptimeNanoseconds - start
      }
      bytes += chunk
    }

    /// Everything written so far.
    var text: String {
      lock.lock()
      defer { lock.unlock() }
      return String(decoding: bytes, as: UTF8.self)
    }
  }

  /// Boots `source` on a fresh `engine` (sbt with `translations`) and runs it to its end.
  static func run(
    source: BtBenchCommand.ImageSource, engine name: String, translations: StaticTranslationSet?, timeout: Double
  ) throws -> Observation {
    let start = DispatchTime.now().uptimeNanoseconds
    let engine: any Engine =
      name == "sbt" ? StaticTranslatorEngine(translations: translations) : try EngineRegistry.make(name)
    let console = Console(start: start)
    let memory: GuestMemory
    let boot: BootState
    var configuration: MachineConfiguration
    let expectedStatus: Int32
    switch source {
    case .kernel(let commandLineFor):
      memory = try GuestMemory(ramSize: ReferenceGuest.benchMemoryBytes)
      configuration = MachineConfiguration(consoleCapture: { console.append($0) }, timeoutSeconds: timeout)
      boot = try ReferenceGuest.load(
        into: memory, commandLine: commandLineFor(name), platformTables: configuration.placesPlatformTablesInMemory)
      expectedStatus = 0
    case .firmware(let path):
      memory = try GuestMemory(ramSize: 256 << 20)
      let image = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
      boot = try FirmwareLoader.load(firmware: image, into: memory)
      configuration = MachineConfiguration(
        consoleCapture: { console.append($0) }, timeoutSeconds: timeout, firmware: true,
        stopOnOutput: BtBenchCommand.seabiosBootText, debugConsoleCapture: { console.append($0) })
      expectedStatus = 0
    }
    let vm = try Machine(memory: memory, boot: boot, engine: engine, configuration: configuration)
    let vcpu = vm.vcpus[0]
    // The kernel's benchmark markers (ports 0x500-0x501) answered as in `bench guest`.
    try vm.portBus.register(
      BenchmarkMarkerDevice(statistics: vm.statistics, instructions: { vcpu.instructionsRetired }),
      ports: BenchmarkMarkerDevice.ports)
    let outcome = vm.run()
    let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    var counters: [String: UInt64] = [:]
    for c in outcome.statistics.engineCounters { counters[c.name] = c.value }
    let failure: String? =
      outcome.exitStatus == expectedStatus
      ? nil : String(outcome.reason.description.split(separator: "\n").first ?? "")
    return Observation(
      firstOutputSeconds: console.firstByteNanoseconds.map { Double($0) / 1e9 }, wallSeconds: wall,
      output: console.text, counters: counters, instructions: outcome.statistics.instructionsRetired,
      failure: failure)
  }

  /// The medians of `runs` as a column (coverage and code cache from the engine's counters).
  static func summarize(engine: String, runs: [Observation]) -> BtBenchReport.Column {
    var column = BtBenchReport.Column(engine: engine)
    guard !runs.isEmpty else { return column }
    func med(_ f: (Observation) -> Double?) -> Double? {
      let values = runs.compactMap(f)
      return values.isEmpty ? nil : median(values)
    }
    column.firstOutputSeconds = med { $0.firstOutputSeconds }
    column.wallSeconds = med { $0.wallSeconds }
    column.onlineTranslationSeconds = med { $0.counters["dbt-translation-ns"].map { Double($0) / 1e9 } }
    column.codeCacheBytes = med { run in run.counters["dbt-host-bytes"].map { Double($0) } }.map { UInt64($0) }
    let last = runs[runs.count / 2]
    if let total = last.instructions, total > 0 {
      let translated = last.counters["dbt-translated-instructions"]
      if engine == "interp" {
        column.interpreterShare = 1
      } else if let translated {
        let file = last.counters["sbt-static-instructions"] ?? 0
        if engine == "sbt" { column.staticShare = Double(file) / Double(total) }
        column.dynamicShare = Double(translated &- file) / Double(total)
        column.interpreterShare = Double(total &- min(translated, total)) / Double(total)
      }
    }
    var perBenchmark: [String: [Double]] = [:]
    for run in runs {
      for r in KernelBenchmarkLines.results(in: run.output) { perBenchmark[r.name, default: []].append(r.ns) }
    }
    column.nanosecondsPerOperation = perBenchmark.mapValues(median)
    return column
  }
}

/// The kernel's `BENCH` lines, read with `BenchmarkResult(line:)`.
enum KernelBenchmarkLines {
  /// Name and ns/op of each benchmark line of `output`.
  static func results(in output: String) -> [(name: String, ns: Double)] {
    output.split(separator: "\n").compactMap { line in
      BenchmarkResult(line: line).map { ($0.name, $0.nanosecondsPerOperation) }
    }
  }
}

extension BtBenchReport {
  /// The ns/op rows of every guest as a `BenchTable`, for `SVGChart` (one group per benchmark,
  /// one bar per engine).
  var chartTable: BenchTable {
    var benchmarks: [String] = []
    var results: [String: [String: BenchTable.Measurement]] = [:]
    for guest in guests {
      let names = Set(guest.columns.flatMap { $0.nanosecondsPerOperation.keys }).sorted()
      for name in names {
        let key = guest.name == "kernel-bench" ? name : "\(guest.name): \(name)"
        benchmarks.append(key)
        for column in guest.columns {
          if let ns = column.nanosecondsPerOperation[name] {
            results[column.engine, default: [:]][key] = BenchTable.Measurement(
              iterations: 0, nanosecondsPerOperation: ns)
          }
        }
      }
    }
    let columns = BtBenchReport.engines.map { engine in
      BenchTable.Column(
        name: engine, isPeer: false, commandLine: "bench bt", wallSeconds: nil, failure: nil,
        results: results[engine] ?? [:])
    }
    return BenchTable(
      host: host, date: date, buildConfiguration: buildConfiguration, benchmarks: benchmarks, columns: columns,
      notes: notes)
  }
}
