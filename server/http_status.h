/* http_status.h - the HTTP status codes the server answers with, named once for every module. */
#ifndef ONESPIKE_SERVER_HTTP_STATUS_H
#define ONESPIKE_SERVER_HTTP_STATUS_H

#define HTTP_OK                200
#define HTTP_BAD_REQUEST       400
#define HTTP_UNAUTHORIZED      401
#define HTTP_NOT_FOUND         404
#define HTTP_METHOD_NOT_ALLOWED 405
#define HTTP_TIMEOUT           408
#define HTTP_LENGTH_REQUIRED   411
#define HTTP_TOO_LARGE         413
#define HTTP_URI_TOO_LONG      414
#define HTTP_UNSUPPORTED_MEDIA 415
#define HTTP_UNPROCESSABLE     422
#define HTTP_FIELDS_TOO_LARGE  431
#define HTTP_CLIENT_CLOSED     499 /* nginx's code for "client went away before the answer" */
#define HTTP_INTERNAL_ERROR    500
#define HTTP_UNAVAILABLE       503
#define HTTP_DEADLINE          504
#define HTTP_VERSION_NOT_SUPP  505

#endif
