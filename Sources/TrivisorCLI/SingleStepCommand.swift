import ArgumentParser
import Oracles
import X86

struct SingleStepCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "singlestep",
    abstract: "Run SingleStep MOO test vectors captured from real CPUs against the x86 model.",
    discussion: """
      DIR is a folder of .MOO.gz files with its metadata.json (e.g. ../shared/testdata/singlestep/8086). \
      Prints a per-opcode table and a final line 'N passed, M failed'; exits with status 1 when any test fails.
      """
  )

  @Argument(help: "Folder of .MOO.gz files.") var directory: String
  @Option(help: "CPU: 8086, 80286 or 80386 (default: from the folder name).") var cpu: String?
  @Option(help: "Only this opcode file, e.g. 00 or F6.6.") var opcode: String?
  @Flag(help: "Print the first failing test of each opcode.") var verbose = false

  func run() throws {
    let model: CPUModel
    switch cpu {
    case "8086"?, "8088"?: model = .i8086
    case "80286"?, "286"?: model = .i80286
    case "80386"?, "386"?: model = .i80386
    case nil:
      guard let guess = SingleStepRunner.model(forDirectory: directory) else {
        throw ValidationError("cannot tell the CPU from '\(directory)': pass --cpu 8086|80286|80386")
      }
      model = guess
    case let other?: throw ValidationError("unknown CPU '\(other)': use 8086, 80286 or 80386")
    }
    let runner = SingleStepRunner(model: model)
    let report: SingleStepReport
    do {
      report = try runner.run(directory: directory, opcode: opcode)
    } catch { throw ValidationError(error.description) }
    if report.results.isEmpty {
      throw ValidationError("no .MOO.gz files\(opcode.map { " for opcode \($0)" } ?? "") in \(directory)")
    }
    if verbose {
      for r in report.results where r.failed > 0 { print("\(r.stem): \(r.firstFailure ?? "")") }
    }
    print(report.table())
    if report.failed > 0 { throw ExitCode(1) }
  }
}
