/// Loads a guest image into memory and returns the vCPU state to start it from.
///
/// Formats, tried in this order:
/// 1. a raw binary, when `options.flatAddress` is set (`FlatLoader`);
/// 2. a 64-bit x86 ELF executable, started in long mode (`ELF64Loader`), even when it also
///    carries a Multiboot header;
/// 3. a Linux bzImage, started through the 64-bit boot protocol (`LinuxLoader`);
/// 4. a Multiboot v1 kernel (32-bit ELF, or any image with the header's address fields),
///    started in 32-bit protected mode (`MultibootLoader`).
///
/// Every problem with the image is a one-line `LoaderError`; a loader never crashes on bad input.
/// Guest memory may be partly written when an error is thrown.
public enum ImageLoader {
  /// What `detectFormat` calls a Linux bzImage.
  public static let linuxFormatName = "Linux bzImage"

  /// The format `load` would use for `image`, by name (for messages), or nil if unrecognized.
  public static func detectFormat(_ image: [UInt8], options: LoadOptions = LoadOptions()) -> String? {
    if options.flatAddress != nil { return "flat binary" }
    if ELFFile.hasMagic(image) {
      if image.count > 4 && image[4] == 2 { return "ELF64" }
      return MultibootLoader.hasHeader(image) ? "Multiboot ELF32" : "ELF32 without a Multiboot header"
    }
    if LinuxLoader.isBzImage(image) { return linuxFormatName }
    if MultibootLoader.hasHeader(image) { return "Multiboot" }
    return nil
  }

  /// Loads `image` in the first format that matches (see the type's description) and returns the start state;
  /// throws a one-line `LoaderError` for anything it cannot boot.
  public static func load(image: [UInt8], into memory: GuestMemory, options: LoadOptions = LoadOptions())
    throws(LoaderError)
    -> BootState
  {
    if let address = options.flatAddress {
      return try FlatLoader.load(image, into: memory, options: options, address: address)
    }
    guard !image.isEmpty else { throw LoaderError("image is empty") }
    if ELFFile.hasMagic(image) {
      if image.count > 4 && image[4] == 2 {
        return try ELF64Loader.load(image, into: memory, options: options)
      }
      guard image.count > 4, image[4] == 1 else {
        // Let the ELF parser name the problem (truncated identification, bad class).
        _ = try ELFFile(ImageBytes(image, name: "ELF image"))
        throw LoaderError("ELF image has an invalid class")
      }
      guard MultibootLoader.hasHeader(image) else {
        throw LoaderError("32-bit ELF image has no Multiboot header; only 64-bit ELF kernels boot directly")
      }
      return try MultibootLoader.load(image, into: memory, options: options)
    }
    if LinuxLoader.isBzImage(image) {
      return try LinuxLoader.load(image, into: memory, options: options)
    }
    if MultibootLoader.hasHeader(image) {
      return try MultibootLoader.load(image, into: memory, options: options)
    }
    throw LoaderError(
      "unrecognized image format (not ELF, Linux bzImage or Multiboot); give a load address to boot a raw binary")
  }
}
