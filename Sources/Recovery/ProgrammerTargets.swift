import Programmers

extension ProgrammerConnection {
    /// The chip behind this programmer, as the restore skeleton drives it.
    public var restoreTarget: RestoreTarget {
        switch self {
        case let .isp(programmer): return AVRISPTarget(programmer: programmer)
        case let .swd(link): return STM32SWDTarget(link: link)
        }
    }
}
