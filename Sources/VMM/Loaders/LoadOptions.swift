/// What the user asked the loader to do besides "load this image".
public struct LoadOptions: Sendable, Equatable {
  /// The kernel command line (Linux `cmd_line_ptr`, Multiboot `cmdline`).
  public var commandLine: String
  /// An initial RAM disk (Linux `ramdisk_image`, the first Multiboot module).
  public var initrd: [UInt8]?
  /// Load the image as a raw binary at this guest-physical address, skipping format detection.
  public var flatAddress: UInt64?
  /// Where a raw binary starts executing; defaults to `flatAddress`.
  public var flatEntry: UInt64?
  /// The CPU mode a raw binary starts in.
  public var flatMode: BootState.Mode
  /// The image's path as the user gave it. A Multiboot kernel's command line starts with it, then
  /// `commandLine`, as GRUB and QEMU pass it (kernels read the first word as their own name).
  public var imagePath: String?
  /// The machine will write the PC platform tables into low memory
  /// (`MachineConfiguration.placesPlatformTablesInMemory`; `PlatformTables`): the loader keeps
  /// images off their ranges, reports their area reserved in the memory map it hands the kernel,
  /// and points a Linux kernel's `boot_params.acpi_rsdp_addr` at the RSDP.
  public var platformTables: Bool

  /// The command line a Multiboot kernel receives: `imagePath`, a space and `commandLine`.
  public var multibootCommandLine: String {
    guard let imagePath, !imagePath.isEmpty else { return commandLine }
    return commandLine.isEmpty ? imagePath : imagePath + " " + commandLine
  }

  /// Options; all default to "none" (no command line, no initrd, format detection, 64-bit flat mode,
  /// no platform tables).
  public init(
    commandLine: String = "", initrd: [UInt8]? = nil, flatAddress: UInt64? = nil, flatEntry: UInt64? = nil,
    flatMode: BootState.Mode = .long64, imagePath: String? = nil, platformTables: Bool = false
  ) {
    self.imagePath = imagePath
    self.platformTables = platformTables
    self.commandLine = commandLine
    self.initrd = initrd
    self.flatAddress = flatAddress
    self.flatEntry = flatEntry
    self.flatMode = flatMode
  }
}

extension LoadOptions {
  /// What the loader must not place anything on besides its own boot structures: the platform
  /// tables' ranges when `platformTables` is set.
  var platformReservations: [(Range<UInt64>, String)] { platformTables ? PlatformTables.reservedRanges : [] }

  /// The E820 memory map the kernel receives: `memory`'s RAM, with the platform tables' area
  /// reserved when `platformTables` is set.
  func memoryMap(for memory: GuestMemory) -> [E820Entry] {
    platformTables ? PlatformTables.e820Entries(for: memory) : E820Map.entries(for: memory)
  }
}
