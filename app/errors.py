"""What can go wrong, in the service's own words. problems.py turns each into an HTTP answer."""


class ServiceError(Exception):
    """Base of every error that has a defined answer; `detail` says what was wrong and how to fix it."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidUsername(ServiceError):
    pass


class InvalidDateOfBirth(ServiceError):
    pass


class InvalidBody(ServiceError):
    pass


class UnsupportedMediaType(ServiceError):
    pass


class BodyTooLarge(ServiceError):
    pass


class UserNotFound(ServiceError):
    pass


class StorageUnavailable(ServiceError):
    pass
