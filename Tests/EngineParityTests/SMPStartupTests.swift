import Interpreter
import KVMEngine
import TestHostSupport
import Testing
import VMM

/// A guest with several vCPUs starts its application processors the way a PC does: the BSP
/// enables its local APIC and sends INIT, then start-up IPIs (all excluding self) to the page at
/// 0x8000; every AP starts there in real mode and does `lock inc dword [0x9000]`; the BSP waits
/// until the count reaches the number of APs and exits through isa-debug-exit.
@Suite struct SMPStartupTests {
  /// The BSP (64-bit, at 0x10000): SVR = 0x1FF, ICR = INIT, SIPI 08, SIPI 08 (all excluding self),
  /// then spin until [0x9000] == [0x9004], then `out 0xF4, 0`.
  static let bsp: [UInt8] = [
    0xC7, 0x04, 0x25, 0x00, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x48, 0xBB, 0x00, 0x00, 0xE0, 0xFE, 0x00,
    0x00, 0x00, 0x00, 0xC7, 0x83, 0xF0, 0x00, 0x00, 0x00, 0xFF, 0x01, 0x00, 0x00, 0xC7, 0x83, 0x10, 0x03, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0xC7, 0x83, 0x00, 0x03, 0x00, 0x00, 0x00, 0x45, 0x0C, 0x00, 0xC7, 0x83, 0x00,
    0x03, 0x00, 0x00, 0x08, 0x46, 0x0C, 0x00, 0xC7, 0x83, 0x00, 0x03, 0x00, 0x00, 0x08, 0x46, 0x0C, 0x00, 0xF3,
    0x90, 0x8B, 0x04, 0x25, 0x04, 0x90, 0x00, 0x00, 0x39, 0x04, 0x25, 0x00, 0x90, 0x00, 0x00, 0x75, 0xEE, 0xB0,
    0x00, 0xE6, 0xF4, 0xF4,
  ]
  /// An AP (16-bit, at 0x8000): `lock inc dword [0x9000]`, then `pause; jmp` for ever.
  static let ap: [UInt8] = [0x66, 0xF0, 0xFF, 0x06, 0x00, 0x90, 0xF3, 0x90, 0xEB, 0xFC]

  /// A machine of `cpus` vCPUs with `bspCode` at 0x10000, the AP code at 0x8000 and the AP count
  /// at 0x9004 (rebooting through `SmallGuestBoot` again when `reboots`).
  static func machine(
    cpus: Int, on engine: any Engine, irqchip: InterruptControllerPlacement, bspCode: [UInt8], reboots: Bool = false
  ) throws -> Machine {
    let memory = try GuestMemory(ramSize: 2 << 20)
    try memory.write(0x10000, bytes: bspCode)
    try memory.write(0x8000, bytes: ap)
    try memory.write(UInt32(cpus - 1), at: 0x9004)
    let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000)
    var configuration = MachineConfiguration(
      engineOptions: EngineOptions(interruptController: irqchip), timeoutSeconds: 120)
    configuration.cpuCount = cpus
    if reboots { configuration.reboot = { memory in try SmallGuestBoot.prepare(memory: memory, entry: 0x10000) } }
    return try Machine(memory: memory, boot: boot, engine: engine, configuration: configuration)
  }

  static func boot(
    cpus: Int, on engine: any Engine, irqchip: InterruptControllerPlacement = .user
  ) throws -> (RunOutcome, UInt32) {
    let machine = try Self.machine(cpus: cpus, on: engine, irqchip: irqchip, bspCode: bsp)
    let outcome = machine.run()
    return (outcome, try machine.memory.read(UInt32.self, at: 0x9000))
  }

  @Test(arguments: [1, 2, 4]) func interpStartsEveryApplicationProcessor(cpus: Int) throws {
    let (outcome, started) = try Self.boot(cpus: cpus, on: InterpreterEngine())
    #expect(outcome.reason == .debugExit(value: 0), "\(outcome.reason.description)")
    #expect(started == UInt32(cpus - 1))
    #expect((outcome.statistics.vcpus?.count ?? 1) == cpus)
  }

  @Test(.requires(.kvm)) func kvmStartsEveryApplicationProcessor() throws {
    let (outcome, started) = try Self.boot(cpus: 2, on: try KVMEngine())
    #expect(outcome.reason == .debugExit(value: 0), "\(outcome.reason.description)")
    #expect(started == 1)
  }

  /// The same guest with KVM's in-kernel local APICs: KVM itself holds the AP in wait-for-SIPI.
  @Test(.requires(.kvm)) func kvmWithTheInKernelIRQChipStartsEveryApplicationProcessor() throws {
    let (outcome, started) = try Self.boot(cpus: 2, on: try KVMEngine(), irqchip: .kernel)
    #expect(outcome.reason == .debugExit(value: 0), "\(outcome.reason.description)")
    #expect(started == 1)
  }

  /// Boots twice: the BSP counts boots at 0x9008, zeroes the start count, starts the APs (INIT,
  /// SIPI, SIPI on the first boot; only SIPI, SIPI on the second), waits for every one, and on the
  /// first boot resets the machine through port 0xCF9. The second boot can only finish if the
  /// machine reset put every AP back into wait-for-SIPI, as on a PC: an AP left running its old
  /// `pause; jmp` loop ignores a SIPI and never counts itself again (the run then ends at its
  /// timeout).
  static let rebootingBSP: [UInt8] = [
    0x48, 0xBB, 0x00, 0x00, 0xE0, 0xFE, 0x00, 0x00, 0x00, 0x00, 0xC7, 0x83, 0xF0, 0x00, 0x00, 0x00, 0xFF, 0x01,
    0x00, 0x00, 0xC7, 0x04, 0x25, 0x00, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0x04, 0x25, 0x08, 0x90,
    0x00, 0x00, 0xC7, 0x83, 0x10, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x83, 0x3C, 0x25, 0x08, 0x90, 0x00,
    0x00, 0x02, 0x74, 0x0A, 0xC7, 0x83, 0x00, 0x03, 0x00, 0x00, 0x00, 0x45, 0x0C, 0x00, 0xC7, 0x83, 0x00, 0x03,
    0x00, 0x00, 0x08, 0x46, 0x0C, 0x00, 0xC7, 0x83, 0x00, 0x03, 0x00, 0x00, 0x08, 0x46, 0x0C, 0x00, 0xF3, 0x90,
    0x8B, 0x04, 0x25, 0x04, 0x90, 0x00, 0x00, 0x39, 0x04, 0x25, 0x00, 0x90, 0x00, 0x00, 0x75, 0xEE, 0x83, 0x3C,
    0x25, 0x08, 0x90, 0x00, 0x00, 0x02, 0x74, 0x0A, 0x66, 0xBA, 0xF9, 0x0C, 0xB0, 0x06, 0xEE, 0xF4, 0xEB, 0xFD,
    0xB0, 0x00, 0xE6, 0xF4, 0xF4,
  ]

  static func bootTwice(
    cpus: Int, on engine: any Engine, irqchip: InterruptControllerPlacement = .user
  ) throws -> (RunOutcome, boots: UInt32, resets: Int) {
    let machine = try Self.machine(cpus: cpus, on: engine, irqchip: irqchip, bspCode: rebootingBSP, reboots: true)
    let outcome = machine.run()
    return (outcome, try machine.memory.read(UInt32.self, at: 0x9008), machine.control.resetCount)
  }

  @Test(arguments: [2, 4]) func interpRestartsEveryApplicationProcessorAfterAReset(cpus: Int) throws {
    let (outcome, boots, resets) = try Self.bootTwice(cpus: cpus, on: InterpreterEngine())
    #expect(outcome.reason == .debugExit(value: 0), "\(outcome.reason.description)")
    #expect(boots == 2 && resets == 1)
  }

  @Test(.requires(.kvm)) func kvmRestartsEveryApplicationProcessorAfterAReset() throws {
    let (outcome, boots, resets) = try Self.bootTwice(cpus: 2, on: try KVMEngine())
    #expect(outcome.reason == .debugExit(value: 0), "\(outcome.reason.description)")
    #expect(boots == 2 && resets == 1)
  }

  /// With KVM's in-kernel local APICs the reset must put KVM's own AP state back to wait-for-SIPI.
  @Test(.requires(.kvm)) func kvmWithTheInKernelIRQChipRestartsEveryApplicationProcessorAfterAReset() throws {
    let (outcome, boots, resets) = try Self.bootTwice(cpus: 2, on: try KVMEngine(), irqchip: .kernel)
    #expect(outcome.reason == .debugExit(value: 0), "\(outcome.reason.description)")
    #expect(boots == 2 && resets == 1)
  }
}
