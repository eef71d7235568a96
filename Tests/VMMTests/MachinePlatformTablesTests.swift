import Testing

@testable import VMM

/// The machine places the platform tables for a directly loaded kernel when it has several vCPUs
/// (and the VMM's interrupt controllers), and the I/O APIC reports the ID the MADT gives it.
@Suite struct MachinePlatformTablesTests {
  static func machine(cpus: Int) throws -> Machine {
    let memory = try GuestMemory(ramSize: 2 << 20)
    var configuration = MachineConfiguration()
    configuration.cpuCount = cpus
    return try Machine(
      memory: memory, boot: BootState(mode: .real, registers: Registers(), specialRegisters: SpecialRegisters()),
      engine: ScriptedEngine(scripts: Array(repeating: [], count: cpus)), configuration: configuration)
  }

  @Test func aMultiVCPUMachineGetsTheTablesAndAUniprocessorOneDoesNot() throws {
    #expect(throws: (any Error).self) { _ = try ACPIView.scan(try Self.machine(cpus: 1).memory) }
    let m = try Self.machine(cpus: 2)
    let madt = try decodeMADT(try #require(try ACPIView.scan(m.memory).tables["APIC"]))
    let cpus = madt.entries.compactMap { if case .localAPIC(_, let id, _) = $0 { return id } else { return nil } }
    #expect(cpus == [0, 1])
    let ioapicIDs = madt.entries.compactMap { if case .ioAPIC(let id, _, _) = $0 { return id } else { return nil } }
    #expect(ioapicIDs.count == 1)
    m.ioapic?.write(offset: 0, size: 4, value: 0)
    #expect(m.ioapic.map { UInt8(($0.read(offset: 0x10, size: 4) >> 24) & 0xF) } == ioapicIDs.first)
  }
}
