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

  public init(
    commandLine: String = "", initrd: [UInt8]? = nil, flatAddress: UInt64? = nil, flatEntry: UInt64? = nil,
    flatMode: BootState.Mode = .long64
  ) {
    self.commandLine = commandLine
    self.initrd = initrd
    self.flatAddress = flatAddress
    self.flatEntry = flatEntry
    self.flatMode = flatMode
  }
}
