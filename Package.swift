// swift-tools-version: 6.0
// Trivisor: one VMM, three ways to virtualize an x86-64 CPU.
import PackageDescription

let package = Package(
  name: "Trivisor",
  platforms: [.macOS(.v13)],
  products: [
    .executable(name: "trivisor", targets: ["TrivisorCLI"]),
    .library(name: "X86", targets: ["X86"]),
    .library(name: "VMM", targets: ["VMM"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
  ],
  targets: [
    // <linux/kvm.h> and non-variadic ioctl wrappers: Swift cannot call the variadic ioctl(2).
    .target(name: "CKVM"),
    // Host-side helpers in C for the oracles: running random code natively and catching its faults.
    .target(name: "CNative", linkerSettings: [.linkedLibrary("z")]),
    // Atomic compare-and-exchange on guest memory for software engines with several vCPU threads.
    .target(name: "CAtomics"),
    // libslirp, the user-mode network stack behind `--net user` (Debian: libslirp-dev). Found by its
    // system header path: Debian's slirp.pc needs glib's development files, which nothing else needs.
    .systemLibrary(name: "CSlirp", providers: [.apt(["libslirp-dev"]), .brew(["libslirp"])]),
    // The x86 CPU model: state, decoder, disassembler, semantics, MMU, exceptions. Pure Swift, no I/O.
    .target(name: "X86"),
    // Guest memory, buses, devices, loaders, the VM-exit model, the run loop and statistics.
    .target(name: "VMM", dependencies: ["CSlirp", "CAtomics", "Scheduling"]),
    // vCPU scheduling policy (Xen's credit scheduler), with a deterministic virtual-time simulation.
    .target(name: "Scheduling"),
    // Hardware-assisted engine on Linux /dev/kvm.
    .target(name: "KVMEngine", dependencies: ["CKVM", "VMM"]),
    // Software engine: the X86 model run instruction by instruction.
    .target(name: "Interpreter", dependencies: ["X86", "VMM", "CAtomics"]),
    // Software engine: guest code translated to host x86-64 code at run time (dynamic binary
    // translation), the interpreter taking what the translator leaves.
    .target(name: "Translator", dependencies: ["X86", "VMM", "Interpreter"]),
    // The engine-independent core of trap-and-emulate (`--engine trap`, not wired yet): shadow page
    // tables over guest memory and the emulation of the instructions a deprivileged kernel traps on.
    .target(name: "TrapAndEmulate", dependencies: ["X86", "VMM"]),
    // Software-hardware engine `--engine trap`: guest kernel and user code at real ring 3 of a KVM
    // VM (ring compression), the monitor's stubs at ring 0, trapped instructions emulated.
    .target(name: "TrapEngine", dependencies: ["TrapAndEmulate", "KVMEngine", "CKVM", "Interpreter", "X86", "VMM"]),
    // The VMware-style hybrid `--engine hybrid`: guest user code natively on a trap vCPU, guest
    // kernel code on dbt, the state moved at every ring transition.
    .target(
      name: "HybridEngine",
      dependencies: ["TrapEngine", "TrapAndEmulate", "Translator", "Interpreter", "KVMEngine", "X86", "VMM"]),
    // Software engine: static binary translation (`trivisor translate`, `--engine sbt`): code
    // discovered and translated ahead of time into a file checked by page hashes, dbt for the rest.
    .target(name: "StaticTranslator", dependencies: ["X86", "VMM", "Interpreter", "Translator"]),
    // Test oracles: the host CPU (difftest), captured hardware (SingleStep MOO files), llvm-objdump.
    .target(name: "Oracles", dependencies: ["X86", "CNative", "Translator"]),
    // What every front end needs to launch a guest: the engine registry, the reference guest's
    // boot with benchmark markers, option syntax (memory sizes, console backends).
    .target(
      name: "Launcher",
      dependencies: [
        "VMM", "KVMEngine", "Interpreter", "Translator", "StaticTranslator", "TrapEngine", "HybridEngine",
        "GuestImages",
      ]),
    // Measurements shared by `trivisor bench` and the tests: the per-mode ALU loop on Trivisor's
    // engines and on peer emulators (Bochs, QEMU TCG).
    .target(name: "Benchmarks", dependencies: ["VMM", "Launcher", "Interpreter", "X86"]),
    // `trivisor holes`: the x86 virtualization holes (Robin & Irvine) probed on every engine.
    .target(name: "Holes", dependencies: ["VMM", "Launcher", "TrapEngine", "CNative"]),
    .executableTarget(
      name: "TrivisorCLI",
      dependencies: [
        "VMM", "KVMEngine", "Interpreter", "X86", "Oracles", "GuestImages", "Launcher", "Benchmarks", "Scheduling",
        "Holes", "StaticTranslator",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      path: "Sources/TrivisorCLI"
    ),
    // Builds guests/kernel (the Embedded Swift reference guest) with the toolchain's own tools.
    .plugin(name: "GuestKernelBuilder", capability: .buildTool()),
    // Guest images built with the package: GuestImages.referenceKernel.
    .target(name: "GuestImages", plugins: ["GuestKernelBuilder"]),
    // What the tests need from the host (kvm, SeaBIOS, QEMU, toolchain programs) as skip traits.
    .target(name: "TestHostSupport", dependencies: ["KVMEngine", "CNative"], path: "Tests/TestHostSupport"),
    .testTarget(name: "X86Tests", dependencies: ["X86"]),
    .testTarget(name: "VMMTests", dependencies: ["VMM", "Scheduling", "TestHostSupport"]),
    .testTarget(name: "SchedulingTests", dependencies: ["Scheduling"]),
    // Option syntax and the engine registry shared by the command line and the tests.
    .testTarget(
      name: "LauncherTests",
      dependencies: ["Launcher", "VMM", "KVMEngine", "Interpreter", "Translator", "GuestImages", "TestHostSupport"]),
    .testTarget(name: "KVMEngineTests", dependencies: ["KVMEngine", "VMM", "TestHostSupport"]),
    .testTarget(
      name: "TranslatorTests", dependencies: ["Translator", "Oracles", "X86", "Interpreter", "VMM", "TestHostSupport"]),
    // Static binary translation: the file format, discovery, relocation, sbt against dbt and interp.
    .testTarget(
      name: "StaticTranslatorTests",
      dependencies: [
        "StaticTranslator", "Translator", "X86", "VMM", "Interpreter", "Launcher", "GuestImages", "TestHostSupport",
      ]),
    .testTarget(name: "InterpreterTests", dependencies: ["Interpreter", "VMM", "X86", "TestHostSupport"]),
    // Shadow paging against the X86 model's page walker, and each trapped instruction's emulation.
    .testTarget(name: "TrapAndEmulateTests", dependencies: ["TrapAndEmulate", "X86", "VMM"]),
    // `--engine trap` driven directly: trapped instructions, the virtual CPU the VMM sees (needs kvm).
    .testTarget(
      name: "TrapEngineTests", dependencies: ["TrapEngine", "HybridEngine", "Launcher", "VMM", "TestHostSupport"]),
    .testTarget(name: "OracleTests", dependencies: ["Oracles", "X86", "TestHostSupport"]),
    // The same guest corpus on every engine: identical serial output and exit status.
    .testTarget(
      name: "EngineParityTests",
      dependencies: [
        "VMM", "KVMEngine", "Interpreter", "Translator", "TrapEngine", "HybridEngine", "TestHostSupport",
      ]),
    .testTarget(name: "GuestTests", dependencies: ["GuestImages", "TestHostSupport"]),
    // The command line: the reference guest booted through the engine registry, the bench table.
    .testTarget(
      name: "CLITests", dependencies: ["TrivisorCLI", "Launcher", "GuestImages", "VMM", "KVMEngine", "TestHostSupport"]),
    // The per-mode loop images on the engines and on Bochs, the Bochs configuration, the report.
    .testTarget(name: "BenchmarksTests", dependencies: ["Benchmarks", "VMM", "TestHostSupport"]),
    // The holes probe on every engine, its classifier and the UMIP detection.
    .testTarget(name: "HolesTests", dependencies: ["Holes", "VMM", "TestHostSupport"]),
    // SeaBIOS (Debian's `seabios` package) booted on every engine.
    .testTarget(name: "FirmwareTests", dependencies: ["VMM", "Launcher", "TestHostSupport"]),
  ],
  swiftLanguageModes: [.v6]
)
