extension FwCfg {
  /// The fw_cfg file holding the linker/loader commands.
  public static let tableLoaderFile = "etc/table-loader"

  /// Offers the ACPI tables of `platform` to firmware the way QEMU does, for SeaBIOS (and OVMF)
  /// to install instead of building their own: the files "etc/acpi/rsdp" (allocated in the F
  /// segment, 16-byte aligned), "etc/acpi/tables" (high memory, 64-byte aligned) and
  /// "etc/table-loader" (the commands that allocate both, relocate their pointers and fix their
  /// checksums; see `RelocatableTables.loaderCommands()`). No "etc/mptable": SeaBIOS builds its
  /// MP table from the CPU count. Throws when `platform` is invalid for `memory` or the files
  /// exist already.
  public func addACPITables(for platform: PlatformDescription, memory: GuestMemory) throws(LoaderError) {
    let built = try ACPITables.build(platform, memory: memory).files
    let names = [ACPITables.rsdpFile, ACPITables.tablesFile, Self.tableLoaderFile]
    guard names.allSatisfy({ file(named: $0) == nil }) else {
      throw LoaderError("fw_cfg already has the ACPI table files")
    }
    addFile(ACPITables.rsdpFile, data: built.file(named: ACPITables.rsdpFile)!.bytes)
    addFile(ACPITables.tablesFile, data: built.file(named: ACPITables.tablesFile)!.bytes)
    addFile(Self.tableLoaderFile, data: built.loaderCommands())
  }
}
