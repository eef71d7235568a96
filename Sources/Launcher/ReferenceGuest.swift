import Foundation
import GuestImages
import VMM

/// The reference guest kernel (guests/kernel, `GuestImages.referenceKernel`): the default guest of
/// `trivisor run`, the guest of `trivisor bench` and of the CLI tests. Booted by the ELF64 loader,
/// which passes the command line in RSI as the kernel's boot contract asks (docs/guest-kernel.md).
public enum ReferenceGuest {
  /// Guest RAM for bench and test runs: the kernel needs 8 MiB; a small machine starts fast.
  public static let benchMemoryBytes: UInt64 = 64 << 20

  /// Loads the kernel with `commandLine` ("" = the kernel's default, `selftest`); with
  /// `platformTables`, around the platform tables a multi-vCPU machine writes
  /// (`MachineConfiguration.placesPlatformTablesInMemory`).
  public static func load(into memory: GuestMemory, commandLine: String, platformTables: Bool = false)
    throws(UsageError) -> BootState
  {
    let image: [UInt8]
    do { image = try GuestImages.referenceKernel } catch { throw UsageError(error.description) }
    do {
      return try ImageLoader.load(
        image: image, into: memory, options: LoadOptions(commandLine: commandLine, platformTables: platformTables))
    } catch {
      throw UsageError("the reference kernel: \(error.description)")
    }
  }

  /// What one captured run of the kernel produced.
  public struct CapturedRun: Sendable {
    /// Everything the guest wrote to its console.
    public var output: String
    /// Why the guest stopped, and the run's statistics.
    public var outcome: RunOutcome
    /// VM exits per benchmark, from the kernel's benchmark markers (empty outside `bench`).
    public var exitsByBenchmark: [String: BenchmarkExits]
    /// Wall time of the whole run, VM creation included.
    public var wallSeconds: Double
  }

  /// Loads the kernel as a deprivileged paravirtual domain (`trivisor run --pv`): the PV domain
  /// builder, which enters it through its Xen ELF note (`pv_entry`).
  public static func loadParavirtual(into memory: GuestMemory, commandLine: String, cpus: Int = 1) throws(UsageError)
    -> BootState
  {
    let image: [UInt8]
    do { image = try GuestImages.referenceKernel } catch { throw UsageError(error.description) }
    do {
      return try ParavirtBoot.load(image: image, into: memory, commandLine: commandLine, cpus: cpus)
    } catch {
      throw UsageError("the reference kernel (--pv): \(error.description)")
    }
  }

  /// Boots the kernel on `engine` with `cpuCount` vCPUs, console output captured (and passed line
  /// by line to `onLine`), and the benchmark-marker device listening; with `paravirtual`, as
  /// `trivisor run --pv` boots it (one vCPU); with `scheduling`, under that pCPU pool (whose
  /// owner starts and stops it).
  public static func run(
    engine: any Engine, commandLine: String, timeoutSeconds: Double, engineOptions: EngineOptions = EngineOptions(),
    cpuCount: Int = 1, paravirtual: Bool = false, scheduling: VCPUScheduling? = nil, onLine: ((String) -> Void)? = nil
  ) throws(UsageError) -> CapturedRun {
    let start = DispatchTime.now().uptimeNanoseconds
    let memory: GuestMemory
    do { memory = try GuestMemory(ramSize: benchMemoryBytes) } catch { throw UsageError(error.description) }
    let console = ConsoleLines(onLine: onLine)
    var configuration = MachineConfiguration(
      consoleCapture: { console.append($0) }, engineOptions: engineOptions, timeoutSeconds: timeoutSeconds)
    configuration.cpuCount = cpuCount
    configuration.scheduling = scheduling
    let boot =
      paravirtual
      ? try loadParavirtual(into: memory, commandLine: commandLine)
      : try load(into: memory, commandLine: commandLine, platformTables: configuration.placesPlatformTablesInMemory)
    let vm: Machine
    do {
      vm = try Machine(memory: memory, boot: boot, engine: engine, configuration: configuration)
    } catch {
      throw UsageError("cannot create the machine on \(engine.name): \(error)")
    }
    if paravirtual {
      do { try vm.paravirt.startDeprivileged(boot: boot) } catch {
        throw UsageError("the reference kernel (--pv): \(error.description)")
      }
    }
    let vcpu = vm.vcpus[0]
    let markers = BenchmarkMarkerDevice(
      statistics: vm.statistics, instructions: { vcpu.instructionsRetired }, engineCounters: { vcpu.engineCounters })
    do {
      try vm.portBus.register(markers, ports: BenchmarkMarkerDevice.ports)
    } catch {
      throw UsageError("cannot attach the benchmark markers: \(error)")
    }
    if paravirtual { markers.serveMarkerHypercall(on: vm.hypercalls) }
    let outcome = vm.run()
    console.finish()
    let names = ReferenceKernelOutput.benchmarkNamesByMarkerID
    var exits: [String: BenchmarkExits] = [:]
    for (id, region) in markers.regions where id < names.count { exits[names[id]] = region }
    return CapturedRun(
      output: console.text, outcome: outcome, exitsByBenchmark: exits,
      wallSeconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
  }
}

/// Collects console bytes into text and hands out complete lines.
private final class ConsoleLines {
  private var bytes: [UInt8] = []
  private var lineStart = 0
  private let onLine: ((String) -> Void)?
  init(onLine: ((String) -> Void)?) { self.onLine = onLine }

  func append(_ chunk: [UInt8]) {
    bytes += chunk
    guard let onLine else { return }
    while let newline = bytes[lineStart...].firstIndex(of: 10) {
      onLine(String(decoding: bytes[lineStart..<newline], as: UTF8.self))
      lineStart = newline + 1
    }
  }

  func finish() {
    if let onLine, lineStart < bytes.count { onLine(String(decoding: bytes[lineStart...], as: UTF8.self)) }
    lineStart = bytes.count
  }

  var text: String { String(decoding: bytes, as: UTF8.self) }
}
