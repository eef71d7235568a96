import Testing

@testable import VMM

/// The machine places the platform tables for a directly loaded kernel when it has several vCPUs
/// (and the VMM's interrupt controllers), and the I/O APIC reports the ID the MADT gives it.
@Suite struct MachinePlatformTablesTests {
  static func machine(
    cpus: Int, numaNodes: Int? = nil, ramMiB: UInt64 = 2, interruptController: InterruptControllerPlacement = .user
  ) throws -> Machine {
    let memory = try GuestMemory(ramSize: ramMiB << 20)
    var configuration = MachineConfiguration(engineOptions: EngineOptions(interruptController: interruptController))
    configuration.cpuCount = cpus
    configuration.numaNodes = numaNodes
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

  @Test func vNUMANodesSplitTheVCPUsAndRAMInTheSRATAndSLIT() throws {
    let m = try Self.machine(cpus: 4, numaNodes: 2, ramMiB: 16)
    let tables = try ACPIView.scan(m.memory).tables
    let srat = try decodeSRAT(try #require(tables["SRAT"]))
    let processors = srat.compactMap {
      if case .processor(let d, let id, _, _) = $0 { return [d, id] } else { return nil }
    }
    #expect(processors == [[0, 0], [0, 1], [1, 2], [1, 3]])
    let memory = srat.compactMap {
      if case .memory(let d, let b, let l, _) = $0 { return [UInt64(d), b, l] } else { return nil }
    }
    #expect(memory == [[0, 0, 8 << 20], [1, 8 << 20, 8 << 20]])
    #expect(try decodeSLIT(try #require(tables["SLIT"])) == [[10, 20], [20, 10]])
    #expect(m.configuration.placesPlatformTablesInMemory)
  }

  @Test func oneVCPUWithVNUMAGetsTheTablesToo() throws {
    let m = try Self.machine(cpus: 1, numaNodes: 1, ramMiB: 4)
    let tables = try ACPIView.scan(m.memory).tables
    #expect(tables["SRAT"] != nil && tables["APIC"] != nil)
  }

  @Test func vNUMAWithTheEnginesInterruptControllersIsRefused() {
    #expect(throws: EngineError.self) { _ = try Self.machine(cpus: 2, numaNodes: 2, interruptController: .kernel) }
    // Several vCPUs on the engine's controllers: no tables from the VMM (and no error).
    var configuration = MachineConfiguration(engineOptions: EngineOptions(interruptController: .kernel))
    configuration.cpuCount = 2
    #expect(!configuration.describesPlatform && !configuration.placesPlatformTablesInMemory)
  }

  @Test func oneCPUIsDescribedOnlyWhenAsked() {
    var configuration = MachineConfiguration()
    #expect(!configuration.describesPlatform)
    configuration.describesPlatformOnOneCPU = true  // what `trivisor run` sets for a Linux kernel
    #expect(configuration.describesPlatform && configuration.placesPlatformTablesInMemory)
  }

  @Test func firmwareGetsTheTablesThroughFwCfgNotInMemory() {
    var configuration = MachineConfiguration(firmware: true)
    configuration.cpuCount = 2
    #expect(configuration.describesPlatform && !configuration.placesPlatformTablesInMemory)
  }

  /// fw_cfg is on every boot path, as on QEMU's PC: a directly booted multi-vCPU machine offers
  /// the CPU count and the same ACPI tables there too, and a reboot does not add them twice.
  @Test func directBootHasFwCfgWithTheCPUCountAndTables() throws {
    let m = try Self.machine(cpus: 2)
    let fwCfg = try #require(m.devices.fwCfg)
    fwCfg.write(port: 0x510, size: 2, value: 0x05)  // FW_CFG_NB_CPUS
    #expect(fwCfg.read(port: 0x511, size: 1) | fwCfg.read(port: 0x511, size: 1) << 8 == 2)
    #expect(fwCfg.file(named: "etc/acpi/tables") != nil && fwCfg.file(named: "etc/acpi/rsdp") != nil)
    #expect(fwCfg.file(named: "etc/e820") != nil)
    let uniprocessor = try Self.machine(cpus: 1)
    #expect(uniprocessor.devices.fwCfg?.file(named: "etc/acpi/tables") == nil)
    #expect(uniprocessor.devices.fwCfg != nil)
  }
}
