// OUR TypeScript types for the two KServe resources in deploy/kserve/, written for
// deploy/validate.sh (no npm package ships them). They follow KServe's Go API types
// (serving.kserve.io/v1alpha1 ServingRuntime, serving.kserve.io/v1beta1 InferenceService, as
// of KServe 0.13-0.15) but only a SUBSET of their fields: the ones a single-model runtime like
// ours may use. A field outside the subset fails the check (TypeScript's excess-property check),
// which is the point: a misspelt field is caught offline; a field we need later is added here.
// Embedded Kubernetes types (Container, Volume, ...) come from kubernetes-types, so a
// container inside a ServingRuntime is checked as strictly as one inside a Deployment.
import type { ObjectMeta } from "kubernetes-types/meta/v1";
import type {
    Affinity,
    Container,
    LocalObjectReference,
    PodSecurityContext,
    Toleration,
    Volume,
} from "kubernetes-types/core/v1";

type StringMap = { [key: string]: string };

/** InferenceServiceProtocol: "v1", "v2", "grpc-v1", "grpc-v2" (and "openAI" since 0.13). */
export type Protocol = "v1" | "v2" | "grpc-v1" | "grpc-v2" | "openAI";

export interface SupportedModelFormat {
    name: string;
    version?: string;
    autoSelect?: boolean;
    priority?: number;
}

export interface ServingRuntimeSpec {
    supportedModelFormats?: SupportedModelFormat[];
    multiModel?: boolean;
    disabled?: boolean;
    protocolVersions?: Protocol[];
    /** At least one; KServe routes to the first container ("kserve-container"). */
    containers: [Container, ...Container[]];
    volumes?: Volume[];
    nodeSelector?: StringMap;
    affinity?: Affinity;
    tolerations?: Toleration[];
    labels?: StringMap;
    annotations?: StringMap;
    imagePullSecrets?: LocalObjectReference[];
    hostIPC?: boolean;
    grpcEndpoint?: string;
    grpcDataEndpoint?: string;
    httpDataEndpoint?: string;
    replicas?: number;
    storageHelper?: { disabled?: boolean };
}

export interface ServingRuntime {
    apiVersion: "serving.kserve.io/v1alpha1";
    kind: "ServingRuntime" | "ClusterServingRuntime";
    metadata: ObjectMeta & { name: string };
    spec: ServingRuntimeSpec;
}

export interface ModelFormat {
    name: string;
    version?: string;
}

/** PredictorExtensionSpec + modelFormat/runtime: a Container whose fields are all optional. */
export interface ModelSpec extends Partial<Container> {
    modelFormat: ModelFormat;
    runtime?: string;
    storageUri?: string;
    runtimeVersion?: string;
    protocolVersion?: Protocol;
}

/** ComponentExtensionSpec: replicas, autoscaling, rollout. */
export interface ComponentExtensionSpec {
    minReplicas?: number;
    maxReplicas?: number;
    scaleTarget?: number;
    scaleMetric?: "cpu" | "memory" | "concurrency" | "rps";
    containerConcurrency?: number;
    timeout?: number;
    canaryTrafficPercent?: number;
    labels?: StringMap;
    annotations?: StringMap;
}

export interface PredictorSpec extends ComponentExtensionSpec {
    model: ModelSpec;
    serviceAccountName?: string;
    nodeSelector?: StringMap;
    affinity?: Affinity;
    tolerations?: Toleration[];
    securityContext?: PodSecurityContext;
    imagePullSecrets?: LocalObjectReference[];
    volumes?: Volume[];
    terminationGracePeriodSeconds?: number;
    automountServiceAccountToken?: boolean;
}

export interface InferenceService {
    apiVersion: "serving.kserve.io/v1beta1";
    kind: "InferenceService";
    metadata: ObjectMeta & { name: string };
    spec: { predictor: PredictorSpec };
}
