import ArgumentParser

/// `trivisor bench [SUITE]`: one subcommand per benchmark suite. The default, `guest`, runs the
/// reference guest's micro-benchmarks on every engine (`GuestBenchCommand`); `smp` its multiprocessor
/// benchmarks with 1, 2 and 4 vCPUs (`SMPBenchCommand`); `kvm` measures the
/// kvm engine against its C and native baselines (`KVMBenchCommand`); `cpu` the X86 model's
/// throughput against the host CPU, and with `--peers` per CPU mode against Bochs and QEMU
/// (`CPUBenchCommand`); `linux` Debian's kernel from power-on to a program's exit next to QEMU
/// (`LinuxBenchCommand`); `hypercall` the paravirtual hypercall's round trip per engine
/// (`HypercallBenchCommand`); `sched` the credit scheduler with real guests (`SchedBenchCommand`); `bt` interpretation, dynamic and static binary translation on the
/// same guests (`BtBenchCommand`).
struct BenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench",
    abstract: "Run the benchmarks (release builds: swift build -c release).",
    subcommands: [
      GuestBenchCommand.self, SMPBenchCommand.self, KVMBenchCommand.self, CPUBenchCommand.self, LinuxBenchCommand.self,
      HypercallBenchCommand.self, SchedBenchCommand.self, BtBenchCommand.self,
    ],
    defaultSubcommand: GuestBenchCommand.self
  )
}

/// Options every benchmark suite takes.
struct BenchOptions: ParsableArguments {
  @Option(help: "Also write the results as JSON to this file.")
  var json: String?

  @Option(help: "Rounds per measurement (medians are reported).")
  var rounds = 9

  @Flag(name: .customLong("allow-debug"), help: "Run even in a debug build (numbers are meaningless).")
  var allowDebug = false

  /// Refuses debug builds unless `--allow-debug`, then warns loudly.
  func checkBuild() throws {
    guard isDebugBuild else { return }
    guard allowDebug else {
      throw usageFailure(
        "benchmarks need a release build: run 'swift build -c release' and '.build/release/trivisor bench' "
          + "(or pass --allow-debug to measure a debug build anyway)")
    }
    printError("trivisor: WARNING: this is a DEBUG build; the numbers below do not represent Trivisor")
  }

  func validateRounds() throws {
    guard (1...1000).contains(rounds) else { throw usageFailure("--rounds must be between 1 and 1000") }
  }
}
