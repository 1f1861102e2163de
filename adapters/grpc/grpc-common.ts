// What Sentinel's gRPC services share: loading a .proto the same way, and who may call them (service accounts).
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Principal } from '../../domain/access.js';

/**
 * Loads a .proto at run time: camelCase field names, 64-bit integers as JavaScript numbers (sequences and
 * millisecond timestamps stay far below 2^53), enums as names, defaults filled in, and `body` naming which member
 * of a oneof is set.
 */
export function loadProto(file: string): grpc.GrpcObject {
  return grpc.loadPackageDefinition(protoLoader.loadSync(file, { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true }));
}

/** Why a call is refused before it starts, as the gRPC status it ends with. */
export class CallRefused extends Error {
  override name = 'CallRefused';
  constructor(
    readonly code: grpc.status,
    readonly details: string,
    readonly reason: 'unauthenticated' | 'permission_denied',
  ) {
    super(details);
  }
}

/**
 * The service account the call's `authorization: Bearer <token>` metadata stands for. No token or an invalid one is
 * refused UNAUTHENTICATED; a person's token, an admin's included, PERMISSION_DENIED (`purpose` says what for).
 */
export async function serviceAccountOf(metadata: grpc.Metadata, authenticate: (token: string) => Promise<Principal>, purpose: string): Promise<Principal> {
  const [header] = metadata.get('authorization');
  const token = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] : undefined;
  if (!token) throw new CallRefused(grpc.status.UNAUTHENTICATED, 'a service-account token in the authorization metadata ("Bearer <token>")', 'unauthenticated');
  let principal: Principal;
  try {
    principal = await authenticate(token);
  } catch {
    throw new CallRefused(grpc.status.UNAUTHENTICATED, 'the token in the authorization metadata is not valid', 'unauthenticated');
  }
  if (principal.role !== 'system' || principal.kind !== 'service') {
    throw new CallRefused(grpc.status.PERMISSION_DENIED, `only service accounts may ${purpose}; ${principal.name} is a ${principal.role}`, 'permission_denied');
  }
  return principal;
}
