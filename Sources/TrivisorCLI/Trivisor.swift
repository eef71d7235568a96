import ArgumentParser

/// `trivisor`: the command-line front end of the VMM.
@main
struct Trivisor: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "trivisor",
    abstract: "A hypervisor that virtualizes an x86-64 CPU three ways behind one VMM.",
    discussion: """
      Engines: kvm (hardware-assisted, Linux /dev/kvm), interp (software interpreter of the \
      Trivisor x86 model) and dbt (dynamic binary translator). `trivisor run` with no image boots \
      the built-in guest; `run --pv IMAGE` boots a paravirtual kernel under the hypercall ABI.
      """,
    subcommands: [
      RunCommand.self, InfoCommand.self, BenchCommand.self, DisasmCommand.self, DiffTestCommand.self,
      SingleStepCommand.self, SchedSimCommand.self, SchedReportCommand.self, HolesCommand.self,
      TranslateCommand.self,
    ],
    defaultSubcommand: nil
  )
}
