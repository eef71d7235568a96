import Foundation

/// Guest images built with the package. `referenceKernel` is the Embedded Swift reference kernel
/// of guests/kernel (see docs/guest-kernel.md), built by the GuestKernelBuilder plugin.
public enum GuestImages {
  /// The file name of the reference kernel inside this module's resource bundle.
  public static let referenceKernelName = "trivisor-kernel.elf"

  /// Where the built reference kernel lies, or nil when the resource is missing.
  public static var referenceKernelURL: URL? {
    Bundle.module.url(forResource: "trivisor-kernel", withExtension: "elf")
  }

  /// A test-only Multiboot kernel that boots a Multiboot module (the reference kernel) through the
  /// ELF64 boot contract of docs/guest-kernel.md, so QEMU can check that path:
  /// `qemu-system-x86_64 -kernel <shim> -initrd <kernel> -append "<kernel command line>"`.
  public static var elf64BootShimURL: URL? {
    Bundle.module.url(forResource: "elf64-boot-shim", withExtension: "elf")
  }

  /// The reference kernel: an ELF64 image with a Multiboot v1 header.
  public static var referenceKernel: [UInt8] {
    get throws(GuestImageError) {
      guard let url = referenceKernelURL else {
        throw GuestImageError(
          "the reference kernel resource \(referenceKernelName) is missing from the GuestImages bundle")
      }
      guard let data = try? Data(contentsOf: url), !data.isEmpty else {
        throw GuestImageError("cannot read the reference kernel at \(url.path)")
      }
      return [UInt8](data)
    }
  }
}

/// A guest image that is not available: one line for the user.
public struct GuestImageError: Error, CustomStringConvertible, Equatable, Sendable {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}
