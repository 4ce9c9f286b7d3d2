/// One part as avrdude's database describes it (``PartCatalog/avrdudeParts``, generated).
struct AVRPartData: Sendable {
    let name: String
    let avrdudeID: String
    let signature: UInt32
    let flash: (size: Int, pageSize: Int)
    let eeprom: (size: Int, pageSize: Int, pageWrites: Bool)
    /// Implemented bits of the low, high and extended fuse; nil where the part has no such byte.
    let fuses: (UInt8?, UInt8?, UInt8?)
    let lock: UInt8
    let boot: (smallest: Int, count: Int)
    /// Microseconds: flash page, EEPROM, chip erase, fuse.
    let waits: (Int, Int, Int, Int)
    let instructions: ISPInstructionSet

    init(_ name: String, _ avrdudeID: String, _ signature: UInt32, flash: (Int, Int), eeprom: (Int, Int, pageWrites: Bool),
         fuses: (UInt8?, UInt8?, UInt8?), lock: UInt8, boot: (Int, Int), waits: (Int, Int, Int, Int), instructions: ISPInstructionSet) {
        self.name = name
        self.avrdudeID = avrdudeID
        self.signature = signature
        self.flash = flash
        self.eeprom = eeprom
        self.fuses = fuses
        self.lock = lock
        self.boot = boot
        self.waits = waits
        self.instructions = instructions
    }
}

/// The parts bootmedic knows: every AVR avrdude programs over ISP (its part database, checked against
/// Debian's /etc/avrdude.conf by the test suite), with named fuse semantics from the datasheets for the
/// parts a bench sees most; and the STM32 families.
public enum PartCatalog {
    /// Every AVR part, in the order `bootmedic parts` lists them.
    public static let avrParts: [AVRPart] = avrdudeParts.map { data in
        let semantics = namedFuses[data.avrdudeID]
        let masks: [(FuseByte, UInt8?)] = [(.low, data.fuses.0), (.high, data.fuses.1), (.extended, data.fuses.2)]
        let fuseBytes = masks.compactMap { byte, mask -> FuseByteLayout? in
            guard let mask else { return nil }
            let named = semantics?.bytes.first { $0.byte == byte }
            return FuseByteLayout(byte, implemented: mask, factoryDefault: named?.factoryDefault, fields: named?.fields ?? [])
        }
        let signature = Signature(UInt8(data.signature >> 16), UInt8(data.signature >> 8 & 0xFF), UInt8(data.signature & 0xFF))
        return AVRPart(
            name: data.name, id: data.name.lowercased(), avrdudeID: data.avrdudeID, signature: signature,
            flash: MemoryGeometry(size: data.flash.size, pageSize: data.flash.pageSize),
            eeprom: MemoryGeometry(size: data.eeprom.size, pageSize: data.eeprom.pageSize), eepromHasPageBuffer: data.eeprom.pageWrites,
            fuseBytes: fuseBytes, lock: LockLayout(implementedMask: data.lock),
            smallestBootSection: data.boot.smallest, bootSectionCount: data.boot.count, clockFamily: semantics?.clock,
            times: ProgrammingTimes(flashPageWrite: data.waits.0, eepromWrite: data.waits.1, chipErase: data.waits.2, fuseWrite: data.waits.3),
            instructionSet: data.instructions)
    }

    /// Every STM32 chip line bootmedic knows, across its families.
    public static var stm32Chips: [STM32Chip] { STM32Family.all.flatMap(\.chips) }

    /// The part a rule or the command line names, by id ("atmega32u4"), avrdude id ("m32u4") or datasheet name.
    public static func part(named name: String) -> Part? {
        let key = name.lowercased()
        if let avr = avrParts.first(where: { $0.id == key || $0.avrdudeID == key || $0.name.lowercased() == key }) {
            return .avr(avr)
        }
        if let line = STM32Line.named(key) { return .stm32(line) }
        return nil
    }

    /// Every AVR part answering `signature` (several parts share one: AT90USB646 and 647, ATmega32 and
    /// 32A), the one to name a chip by first: parts with named fuse semantics before those without, and
    /// among them the revision sold today (ATmega32A before ATmega32: the longer name).
    public static func avrParts(withSignature signature: Signature) -> [AVRPart] {
        let siblings = avrParts.enumerated().filter { $0.element.signature == signature }
        return siblings.sorted { a, b in
            if a.element.hasNamedFuses != b.element.hasNamedFuses { return a.element.hasNamedFuses }
            if a.element.name.count != b.element.name.count { return a.element.name.count > b.element.name.count }
            return a.offset < b.offset
        }.map(\.element)
    }

    /// The STM32 chip line for a DBGMCU_IDCODE DEV_ID.
    public static func stm32Chip(id: UInt16) -> STM32Chip? { stm32Chips.first { $0.chipID == id } }

    /// Every name `part(named:)` accepts, for suggestions in error messages.
    public static var allNames: [String] { avrParts.map(\.id) + STM32Line.all.map(\.name) }
}

/// A part as a rule names it: an AVR with a signature, or an STM32 line whose chips the chip id read
/// over SWD tells apart.
public enum Part: Hashable, Sendable, CustomStringConvertible {
    case avr(AVRPart)
    case stm32(STM32Line)

    public var id: String {
        switch self {
        case let .avr(part): return part.id
        case let .stm32(line): return line.name
        }
    }

    public var description: String {
        switch self {
        case let .avr(part): return part.name
        case let .stm32(line): return line.name.uppercased()
        }
    }

    public var isSTM32: Bool {
        if case .stm32 = self { return true }
        return false
    }
}

